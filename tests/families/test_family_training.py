"""Every registered family through the same loop and methods, on tiny random models built from
configs (plumbing, not learning): each method trains what it should and nothing else, prior
preservation runs, resume equals the uninterrupted run, the LoRA file loads through diffusers'
``load_lora_weights`` and changes the output, and a run is read back by its family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamlock.families import FAMILIES, get_family
from dreamlock.generation import load_generator
from dreamlock.runs import LORA_FILE, read_run
from dreamlock.training.api import finish, prepare_trainer
from dreamlock.training.config import TrainConfig

PROMPT = "a photo of sks dog"


#: the text-to-image families (InstructPix2Pix, an image editor, has tests/families/test_ip2p.py)
TEXT_TO_IMAGE = [name for name in FAMILIES if get_family(name).condition_kind is None]


@pytest.fixture(params=TEXT_TO_IMAGE)
def family(request):
    return request.param


@pytest.fixture
def make(tiny_bases, family, tmp_path, images_writer):
    data = images_writer(tmp_path / "data", 3)

    def config(**overrides) -> TrainConfig:
        values = dict(base=str(tiny_bases[family]), data=str(data), output=str(tmp_path / "run"), method="lora",
                      trigger="sks", class_word="dog", max_train_steps=3, learning_rate=1e-2, embedding_lr=1e-1,
                      seed=0, class_cache_dir=str(tmp_path / "class-cache"), num_class_images=2,
                      class_generation_steps=2, sample_batch_size=2)
        return TrainConfig.model_validate(values | overrides)

    return config


def _parts(adapter) -> dict[str, torch.nn.Module]:
    """The model's parts still loaded (a run that caches its prompts and latents releases the text
    encoders and the VAE before training: training/text_cache.py)."""
    frozen = {f"frozen_text_{i}": t.encoder for i, t in enumerate(adapter.frozen_text_encoders())}  # T5 (SD3, FLUX.1)
    parts = {"denoiser": adapter.denoiser, "vae": adapter.pipe.vae} | frozen
    parts |= {s.name: getattr(adapter.pipe, s.name) for s in adapter.tunable_slots()}
    return {k: m for k, m in parts.items() if m is not None}


def _train(config):
    trainer = prepare_trainer(config)
    parts = _parts(trainer.adapter)
    before = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in parts.items()}
    losses = [trainer.optimizer_step()["loss"] for _ in range(config.max_train_steps)]
    changed = {k: {n for n, p in m.named_parameters() if n in before[k] and not torch.equal(p, before[k][n])}
               for k, m in parts.items()}
    changed |= {k: set() for k in ("vae", *(s.name for s in trainer.adapter.tunable_slots())) if k not in changed}
    return trainer, losses, changed, finish(trainer)


def _image(run_or_model, lora_scale: float = 1.0) -> np.ndarray:
    gen = load_generator(run_or_model, lora_scale=lora_scale)
    return np.asarray(gen.images(PROMPT, [0], steps=2, guidance=1.0)[0], dtype=np.float32)


def test_family_is_detected_and_recorded(make, family):
    trainer, losses, _, run = _train(make(max_train_steps=1))
    assert trainer.config.family == family and read_run(run).family == family
    assert trainer.config.resolution == trainer.adapter.native_resolution  # the base model's size by default
    assert all(math.isfinite(x) for x in losses)


def test_lora_trains_adapters_only_and_loads_through_diffusers(make, family, tiny_bases):
    _, losses, changed, run = _train(make(method="lora", train_text_encoder=True))
    assert all(math.isfinite(x) for x in losses)
    assert not changed["vae"] and not any(v for k, v in changed.items() if k.startswith("frozen_text_"))
    texts = [s.name for s in get_family(family).tunable_slots()]  # CLIP encoders; T5 never trains
    for part in ["denoiser", *texts]:
        assert changed[part] and all("lora_" in n for n in changed[part]), part
    pipe = get_family(family).load_pipeline(tiny_bases[family])
    pipe.set_progress_bar_config(disable=True)

    def image():
        out = pipe(PROMPT, num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                   output_type="np").images[0]
        return out

    base = image()
    pipe.load_lora_weights(str(run / "final"), weight_name=LORA_FILE)
    assert np.abs(image() - base).max() > 1e-3, "the LoRA loaded through diffusers does not change the output"
    assert np.abs(_image(run, lora_scale=0.0) - _image(tiny_bases[family])).max() <= 1.0 < np.abs(_image(run) - _image(tiny_bases[family])).max()


def test_full_trains_the_denoiser(make, family, tiny_bases):
    trainer, _, changed, run = _train(make(method="full", learning_rate=1e-3))
    assert len(changed["denoiser"]) > 0.9 * len(list(trainer.adapter.denoiser.parameters()))
    assert not changed["vae"] and all(not changed[t.name] for t in trainer.adapter.text_encoders())
    assert np.abs(_image(run) - _image(tiny_bases[family])).max() > 1.0


#: families whose pipelines load learned tokens (SD3's does not: tests/families/test_flow_families.py)
TOKEN_FAMILIES = [name for name in TEXT_TO_IMAGE if get_family(name).learns_tokens()]


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_ti_trains_the_new_rows_of_every_text_encoder(make, family, tiny_bases):
    trainer, _, changed, run = _train(make(method="ti"))
    assert not changed["denoiser"] and not changed["vae"]
    for table in trainer.method.tables:
        assert changed[table.name] == {n for n in changed[table.name] if n.endswith("token_embedding.weight")} != set()
        emb = table.embedding.detach()
        frozen = torch.ones(len(emb), dtype=torch.bool)
        frozen[table.token_ids] = False
        assert torch.equal(emb[frozen], table.original[frozen])
    assert len(trainer.method.tables) == len(get_family(family).tunable_slots())
    assert np.abs(_image(run) - _image(tiny_bases[family])).max() > 1.0


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_pivotal_with_prior_preservation(make, family):
    trainer, losses, changed, run = _train(make(method="pivotal", with_prior_preservation=True))
    assert trainer.data.klass is not None and all(math.isfinite(x) for x in losses)
    assert changed["denoiser"] and (run / "final" / LORA_FILE).is_file()


def test_resume_matches_uninterrupted(make, family, tmp_path):
    common = dict(method="lora", max_train_steps=4, checkpointing_steps=2, train_text_encoder=True,
                  with_prior_preservation=True, prior_mode="prior_prediction")
    straight = prepare_trainer(make(output=str(tmp_path / "a"), **common))
    straight.run()
    first = prepare_trainer(make(output=str(tmp_path / "b"), **common))
    first.run(stop_after=3)
    resumed = prepare_trainer(make(output=str(tmp_path / "b"), resume="latest", **common))
    assert resumed.step == 2
    resumed.run()
    want, got = straight.method.trainable_state(), resumed.method.trainable_state()
    assert set(want) == set(got)
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6


def test_sdxl_time_ids_carry_the_images_original_size_and_crop(tiny_bases):
    adapter = get_family("sdxl").load(str(tiny_bases["sdxl"]))
    latents = torch.zeros(2, 4, 12, 20)  # 24 x 40 px at the tiny VAE's factor 2
    meta = torch.tensor([[100.0, 200.0, 0.0, 16.0], [24.0, 40.0, 0.0, 0.0]])
    ids = adapter.time_ids(latents, meta)
    assert ids.tolist() == [[100, 200, 0, 16, 24, 40], [24, 40, 0, 0, 24, 40]]
    assert adapter.time_ids(latents)[0].tolist() == [24, 40, 0, 0, 24, 40]
