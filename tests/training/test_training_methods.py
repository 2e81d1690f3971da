"""Each method on the tiny random model: it trains, the loss is finite, exactly the parameters it
should train change, and its saved result loads back and changes generation. (Plumbing tests.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamlock.generation import load_generator
from dreamlock.runs import read_run
from dreamlock.training.api import finish, prepare_trainer

PROMPT = "a photo of sks dog"


def _train(config, params):
    snapshot, changed = params
    trainer = prepare_trainer(config)
    pipe = trainer.adapter.pipe
    parts = {"unet": trainer.adapter.denoiser, "vae": pipe.vae, "te": pipe.text_encoder}
    # a run that cached its prompts and latents has released the text encoder and the VAE
    # (training/text_cache.py): a released part cannot change
    released = {name for name, module in parts.items() if module is None}
    parts = {name: module for name, module in parts.items() if module is not None}
    before = {name: snapshot(module) for name, module in parts.items()}
    losses = [trainer.optimizer_step()["loss"] for _ in range(config.max_train_steps)]
    diff = {name: changed(before[name], module) for name, module in parts.items()} | dict.fromkeys(released, set())
    run_dir = finish(trainer)
    return trainer, losses, diff, run_dir


def _image(run_or_model) -> np.ndarray:
    gen = load_generator(run_or_model)
    return np.asarray(gen.images(PROMPT, [0], steps=2, guidance=1.0)[0], dtype=np.float32)


def _assert_changes_generation(run_dir, base):
    diff = np.abs(_image(run_dir) - _image(base)).max()
    assert diff > 1.0, f"trained run generates the same image as the base model (max diff {diff})"


def test_full_trains_unet_only(make_config, params, tiny_base):
    trainer, losses, diff, run_dir = _train(make_config(method="full", learning_rate=1e-3), params)
    assert all(math.isfinite(x) for x in losses)
    assert len(diff["unet"]) > 0.9 * len(list(trainer.adapter.denoiser.parameters()))
    assert diff["vae"] == set() and diff["te"] == set()
    assert (run_dir / "final" / "pipeline" / "model_index.json").is_file()
    assert read_run(run_dir).method == "full"
    _assert_changes_generation(run_dir, tiny_base)


def test_full_with_text_encoder(make_config, params):
    trainer, losses, diff, _ = _train(make_config(method="full", learning_rate=1e-3, train_text_encoder=True,
                                                  text_encoder_lr=1e-3), params)
    assert diff["te"] and diff["unet"] and not diff["vae"]
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    assert len(lrs) == 2


def test_lora_trains_only_adapter_weights(make_config, params, tiny_base):
    _, losses, diff, run_dir = _train(make_config(method="lora", rank=4, lora_alpha=8), params)
    assert all(math.isfinite(x) for x in losses)
    assert diff["unet"] and all("lora_" in n for n in diff["unet"])
    assert any("lora_B" in n for n in diff["unet"])
    assert not diff["vae"] and not diff["te"]
    assert (run_dir / "final" / "pytorch_lora_weights.safetensors").is_file()
    _assert_changes_generation(run_dir, tiny_base)


def test_lora_with_text_encoder_and_dora(make_config, params):
    _, _, diff, run_dir = _train(make_config(method="lora", train_text_encoder=True, use_dora=True), params)
    assert diff["te"] and all("lora_" in n for n in diff["te"])
    assert any("lora_magnitude_vector" in n for n in diff["unet"])
    from safetensors import safe_open

    with safe_open(str(run_dir / "final" / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("unet.") for k in keys)


def test_ti_trains_only_new_token_rows(make_config, params, tiny_base):
    trainer, losses, diff, run_dir = _train(make_config(method="ti", num_vectors=2), params)
    assert diff["unet"] == set() and diff["vae"] == set()
    assert len(diff["te"]) == 1 and next(iter(diff["te"])).endswith("token_embedding.weight")
    table = trainer.method.tables[0]
    emb, ids = table.embedding.detach(), table.token_ids
    frozen = torch.ones(len(emb), dtype=torch.bool)
    frozen[ids] = False
    assert torch.equal(emb[frozen], table.original[frozen])
    assert not torch.equal(emb[ids], table.original[ids])
    info = read_run(run_dir)
    assert info.tokens == ["<sks>"]  # "sks" is already a word of the tiny vocabulary
    _assert_changes_generation(run_dir, tiny_base)


@pytest.mark.parametrize("method", ["ti", "pivotal"])
def test_embedding_norm_cap_holds_the_learned_rows(make_config, params, method, tmp_path):
    """Without a cap the tiny run's token rows grow well past their initial (class word's) norm; with
    ``embedding_norm_cap`` 1.5 none ends above 1.5x it, and the rows still train."""
    norms = {}
    for cap in (None, 1.5):
        config = make_config(method=method, num_vectors=2, embedding_norm_cap=cap, output=str(tmp_path / f"run-{cap}"))
        trainer, _, _, _ = _train(config, params)
        ti = trainer.method.ti if method == "pivotal" else trainer.method
        table = ti.tables[0]
        start = table.original[table.token_ids].norm(dim=1)
        now = table.embedding.detach()[table.token_ids].norm(dim=1)
        assert not torch.equal(table.embedding.detach()[table.token_ids], table.original[table.token_ids])
        norms[cap] = (now / start).max().item()
    assert norms[None] > 1.5, f"uncapped rows grew only {norms[None]:.2f}x: the test cannot tell the cap works"
    assert norms[1.5] <= 1.5 + 1e-4


def test_pivotal_trains_lora_and_embeddings(make_config, params, tiny_base):
    trainer, _, diff, run_dir = _train(make_config(method="pivotal"), params)
    assert diff["unet"] and all("lora_" in n for n in diff["unet"])
    assert any(n.endswith("token_embedding.weight") for n in diff["te"])
    final = run_dir / "final"
    assert (final / "pytorch_lora_weights.safetensors").is_file() and (final / "learned_embeds.safetensors").is_file()
    _assert_changes_generation(run_dir, tiny_base)


def test_pivotal_with_text_encoder_lora_saves_only_lora_weights(make_config, params, tiny_base):
    """With a text-encoder LoRA the vocabulary is resized; peft would then save the whole token
    table into the LoRA file, which diffusers refuses to load. The embeddings go to their own file."""
    from safetensors import safe_open

    _, _, diff, run_dir = _train(make_config(method="pivotal", train_text_encoder=True), params)
    assert any("lora_" in n for n in diff["te"])
    with safe_open(str(run_dir / "final" / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("text_encoder.") for k in keys) and all("lora" in k for k in keys)
    _assert_changes_generation(run_dir, tiny_base)


@pytest.mark.parametrize("mode", ["class_images", "prior_prediction"])
def test_lora_with_prior_preservation(make_config, params, mode):
    trainer, losses, diff, _ = _train(make_config(method="lora", with_prior_preservation=True, prior_mode=mode), params)
    assert all(math.isfinite(x) for x in losses)
    assert diff["unet"]
    assert trainer.data.klass is not None if mode == "class_images" else trainer.data.klass is None


def test_training_options_run(make_config, params):
    """min-SNR, offset noise, flips, caption dropout, accumulation, EMA, warmup scheduler together."""
    config = make_config(method="full", learning_rate=1e-3, snr_gamma=5.0, noise_offset=0.1, random_flip=True,
                         caption_dropout=0.5, gradient_accumulation_steps=2, use_ema=True,
                         lr_scheduler="cosine", lr_warmup_steps=2, gradient_checkpointing=True)
    trainer, losses, diff, _ = _train(config, params)
    assert all(math.isfinite(x) for x in losses) and diff["unet"]
    assert trainer.data.instance.flipped is not None


def test_generation_fuses_the_lora_without_changing_the_images(make_config):
    """`generate` / `evaluate` merge the run's LoRA (unet and text encoder) into the weights for speed;
    the images are those of the unmerged adapters, at any scale."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from dreamlock.generation import Generator
    from dreamlock.pipelines import load_pipeline
    from dreamlock.training.api import train

    run = train(make_config(method="lora", train_text_encoder=True))
    for scale in (1.0, 0.5):
        fused = load_generator(run, lora_scale=scale)
        for model in (fused.pipe.unet, fused.pipe.text_encoder):
            layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
            assert layers and all(m.merged for m in layers)
        unfused = Generator(*load_pipeline(run, lora_scale=scale), run)
        a, b = (np.asarray(g.images(PROMPT, [0], steps=2, guidance=1.0)[0], dtype=np.float32) for g in (fused, unfused))
        assert np.abs(a - b).max() <= 1.0


def test_samples_written_during_training(make_config):
    from dreamlock.training.api import train

    run = train(make_config(method="lora", validation_prompt=["a photo of sks dog"], validation_steps=2,
                            num_validation_images=2, validation_inference_steps=2))
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert any((run / "logs").rglob("events.out.tfevents*"))


def test_lora_scale_zero_gives_the_base_model(make_config, tiny_base):
    from dreamlock.training.api import train

    run = train(make_config(method="lora"))
    base = _image(tiny_base)
    off = np.asarray(load_generator(run, lora_scale=0.0).images(PROMPT, [0], steps=2, guidance=1.0)[0], dtype=np.float32)
    on = _image(run)
    assert np.abs(off - base).max() <= 1.0 < np.abs(on - base).max()
