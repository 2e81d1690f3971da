"""Memory options (plumbing; CPU only here, the CUDA paths are exercised through their refusals):
the GPU check's arithmetic and message, out-of-memory turned into advice, card-size presets, a
half-precision frozen base that trains fp32 LoRA weights, and the NF4 option's refusals."""

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
    (dict(quantize_base="nf4"), "needs a CUDA GPU"),
    (dict(memory_preset="12gb"), "needs a CUDA GPU"),
])
def test_memory_options_refused_in_one_line(make, overrides, says):
    with pytest.raises(UserError, match=says) as e:
        check_memory_options(make(**overrides))
    assert "\n" not in str(e.value)

