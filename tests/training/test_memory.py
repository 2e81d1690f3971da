"""Memory options (plumbing on tiny models; CPU only here, the CUDA-only paths are exercised through
their refusals): the GPU check's arithmetic and message, out-of-memory turned into advice, card-size
presets, a half-precision frozen base that trains fp32 LoRA weights, an fp8 (optimum-quanto) frozen
base under a trained LoRA, bitsandbytes' 8-bit AdamW on the CPU, and the NF4 option's refusals."""

from __future__ import annotations

import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.training.api import prepare_trainer
from dreamlock.training.config import MEMORY_PRESETS, TrainConfig
from dreamlock.training.memory import GIB, shortfall, training_state_bytes
from dreamlock.training.precision import choose_base_dtype
from dreamlock.training.validate import check_memory_options


@pytest.fixture
def make(tiny_bases, tmp_path, images_writer):
    data = images_writer(tmp_path / "data", 2)

    def config(**overrides) -> TrainConfig:
        values = dict(base=str(tiny_bases["flux"]), data=str(data), output=str(tmp_path / "run"), method="lora",
                      trigger="sks", class_word="dog", max_train_steps=2, learning_rate=1e-2, resolution=32)
        return TrainConfig.model_validate(values | overrides)

    return config


def test_training_state_and_shortfall_arithmetic():
    params = [torch.zeros(1000, 1000)]
    assert training_state_bytes(params, eight_bit_adam=False) == 12_000_000  # fp32 grad + two Adam moments
    assert training_state_bytes(params, eight_bit_adam=True) == 6_000_000
    assert shortfall(in_use=10 * GIB, state=2 * GIB, free=12 * GIB, total=24 * GIB) is None
    message = shortfall(in_use=20 * GIB, state=4 * GIB, free=3 * GIB, total=24 * GIB)
    assert message.startswith("training needs at least 24.0 GiB") and "23.0 GiB" in message
    assert "gradient_checkpointing" in message and "memory_preset" in message and "\n" not in message


def test_out_of_memory_becomes_advice_naming_the_step(make, monkeypatch):
    trainer = prepare_trainer(make())
    trainer.optimizer_step()

    def boom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "optimizer_step", boom)
    with pytest.raises(UserError, match="the GPU ran out of memory at step 1; lower train_batch_size") as e:
        trainer.run()
    assert "\n" not in str(e.value)


def test_memory_presets_fill_only_unset_keys(make):
    config = make(memory_preset="24gb")
    assert (config.base_dtype, config.use_8bit_adam, config.gradient_checkpointing) == ("bf16", True, True)
    explicit = make(memory_preset="12gb", gradient_checkpointing=False)
    assert explicit.gradient_checkpointing is False and explicit.quantize_base == "nf4"
    assert set(MEMORY_PRESETS) == {"12gb", "16gb", "24gb"}


def test_frozen_base_in_bf16_trains_fp32_lora(make):
    trainer = prepare_trainer(make(base_dtype="bf16", mixed_precision="bf16"))
    transformer = trainer.adapter.denoiser
    frozen = [p for n, p in transformer.named_parameters() if "lora_" not in n]
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    assert trainer.params and all(p.dtype == torch.float32 for p in trainer.params)
    before = [p.detach().clone() for p in trainer.params]
    losses = [trainer.optimizer_step()["loss"] for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params))


def test_base_dtype_defaults():
    assert choose_base_dtype("auto", "cpu", trains_base=False) == torch.float32
    assert choose_base_dtype("bf16", "cpu", trains_base=False) == torch.bfloat16


@pytest.mark.parametrize("overrides, says", [
    (dict(base_dtype="bf16", mixed_precision="no"), "computes under autocast"),
    (dict(quantize_base="nf4", method="full"), "method full trains its weights"),
    (dict(quantize_base="nf4"), "needs a CUDA GPU .* use quantize_base='fp8'"),
    (dict(quantize_base="fp8", method="full"), "frozen in 8-bit floats, and method full trains"),
    (dict(memory_preset="12gb"), "needs a CUDA GPU"),
])
def test_memory_options_refused_in_one_line(make, overrides, says):
    with pytest.raises(UserError, match=says) as e:
        check_memory_options(make(**overrides))
    assert "\n" not in str(e.value)



@pytest.mark.parametrize("family", ["sd", "flux"])
def test_fp8_base_trains_a_lora_over_quantized_layers(tiny_bases, make, family, tmp_path):
    from optimum.quanto import QLinear

    from dreamlock.pipelines import load_pipeline
    from dreamlock.training.api import train

    config = make(base=str(tiny_bases[family]), quantize_base="fp8", max_train_steps=3)
    trainer = prepare_trainer(config)
    denoiser = trainer.adapter.denoiser
    wrapped = [m.base_layer for n, m in denoiser.named_modules() if hasattr(m, "base_layer") and "lora" not in n]
    assert wrapped and all(isinstance(m, QLinear) for m in wrapped)  # every LoRA sits on an fp8 layer
    frozen = {n: p.detach().clone() for n, p in denoiser.named_parameters() if "lora_" not in n}
    before = [p.detach().clone() for p in trainer.params]
    losses = [trainer.optimizer_step()["loss"] for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params))
    assert all(torch.equal(frozen[n], p) for n, p in denoiser.named_parameters() if n in frozen)
    # the whole run: its LoRA (fp32, unquantized) loads on the full-precision base and changes the image
    run = train(config.model_copy(update={"output": tmp_path / "fp8-run"}))
    (lora_pipe, _), (base_pipe, _) = load_pipeline(run), load_pipeline(tiny_bases[family])
    kw = dict(prompt="a photo of sks dog", num_inference_steps=2, height=32, width=32, output_type="np")
    ours = lora_pipe(generator=torch.Generator().manual_seed(0), **kw).images
    plain = base_pipe(generator=torch.Generator().manual_seed(0), **kw).images
    assert abs(ours - plain).max() > 1e-4


def test_8bit_adam_runs_on_the_cpu_and_resumes_exactly(make, tmp_path):
    import bitsandbytes as bnb

    from dreamlock.training.api import train

    trainer = prepare_trainer(make(use_8bit_adam=True))
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert isinstance(inner, bnb.optim.AdamW8bit)  # (states of tensors under 4,096 values stay 32-bit, as in bnb)
    assert torch.isfinite(torch.tensor(trainer.optimizer_step()["loss"]))
    common = dict(use_8bit_adam=True, max_train_steps=4, checkpointing_steps=2)
    straight = prepare_trainer(make(output=str(tmp_path / "a"), **common))
    straight.run()
    first = prepare_trainer(make(output=str(tmp_path / "b"), **common))
    first.run(stop_after=3)  # the checkpoint at step 2 (8-bit optimizer state included) is on disk
    resumed = prepare_trainer(make(output=str(tmp_path / "b"), resume="latest", **common))
    assert resumed.step == 2
    resumed.run()
    want, got = straight.method.trainable_state(), resumed.method.trainable_state()
    assert want.keys() == got.keys()
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6


def test_offload_frozen_parks_what_does_not_train_and_brings_it_back_to_sample(make_config, tmp_path, monkeypatch):
    """Plumbing on the CPU, where the CPU is also the training device: the training device is named
    "cuda:0" to the adapter and moves are recorded (moves to it are no-ops). With samples (so
    nothing can be released): the VAE and the frozen text encoder leave once the prompts are cached,
    come back for each sampling and leave again; the trained LoRA equals a run without offloading."""
    common = dict(max_train_steps=4, validation_prompt=["a photo of sks dog"], validation_steps=2,
                  num_validation_images=1, validation_inference_steps=2)
    plain = prepare_trainer(make_config(output=str(tmp_path / "plain"), **common))
    plain.run()
    trainer = prepare_trainer(make_config(output=str(tmp_path / "off"), offload_frozen=True, **common))
    adapter = trainer.adapter
    names = {id(adapter.vae): "vae", id(adapter.pipe.text_encoder): "text_encoder"}
    assert sorted(names[id(m)] for m in adapter._parked) == ["text_encoder", "vae"]  # not the UNet (it trains)
    adapter._park_device, moves = "cuda:0", []
    for module in adapter._parked:
        def spy(device, _module=module, _to=module.to):
            moves.append((names[id(_module)], str(device)))
            return _module if device == "cuda:0" else _to(device)
        monkeypatch.setattr(module, "to", spy)
    trainer.run()
    round_trip = [("vae", "cuda:0"), ("text_encoder", "cuda:0"), ("vae", "cpu"), ("text_encoder", "cpu")]
    assert moves == round_trip * 2  # samples at steps 2 and 4
    want, got = plain.method.trainable_state(), trainer.method.trainable_state()
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6


def test_fp8_without_optimum_quanto_is_one_line(make, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def missing(name, *args):
        if name.startswith("optimum"):
            raise ModuleNotFoundError(f"No module named '{name.split('.')[0]}'")
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(UserError, match="quantize_base='fp8' needs optimum-quanto: pip install optimum-quanto") as e:
        check_memory_options(make(quantize_base="fp8"))
    assert "\n" not in str(e.value)
