"""SDXL runs through the export formats (tiny random SDXL built from configs; plumbing): kohya keys
with ``lora_unet_`` / ``lora_te1_`` / ``lora_te2_``, files that diffusers' loaders read back to the
same output as the run, and a one-line refusal for the formats not written for SDXL yet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dreamlock.errors import UserError
from dreamlock.exporting import export
from dreamlock.families import get_family
from dreamlock.runs import LORA_FILE
from dreamlock.training.api import train

PROMPT = "a photo of sks dog"
SAME = 1e-5


@pytest.fixture(scope="module")
def xl_runs(tiny_bases, tmp_path_factory, images_writer):
    root = tmp_path_factory.mktemp("xl-runs")
    data = images_writer(root / "data", 3)
    common = dict(base=str(tiny_bases["sdxl"]), data=str(data), trigger="sks", class_word="dog", max_train_steps=3,
                  learning_rate=5e-2, embedding_lr=1e-1, rank=4, lora_alpha=8)
    return {
        "base": tiny_bases["sdxl"],
        "lora": train(common | dict(output=str(root / "lora"), method="lora", train_text_encoder=True)),
        "pivotal": train(common | dict(output=str(root / "pivotal"), method="pivotal")),
        "full": train(common | dict(output=str(root / "full"), method="full", train_text_encoder=True,
                                    learning_rate=1e-3)),
    }


def _pipe(xl_runs):
    pipe = get_family("sdxl").load_pipeline(xl_runs["base"])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe) -> np.ndarray:
    return pipe(PROMPT, num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                output_type="np").images[0]


def test_kohya_lora_keys_and_round_trip(xl_runs, tmp_path):
    path = export(xl_runs["lora"], "kohya-lora", tmp_path / "sks.safetensors")
    state = load_file(str(path))
    prefixes = {"lora_unet" if k.startswith("lora_unet_") else k.split("_text_model_")[0] for k in state}
    assert prefixes == {"lora_unet", "lora_te1", "lora_te2"}
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in state
    assert "lora_te2_text_model_encoder_layers_1_self_attn_out_proj.alpha" in state
    assert not any(k.startswith("lora_te_") for k in state)
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"

    from_run, from_kohya, plain = _pipe(xl_runs), _pipe(xl_runs), _pipe(xl_runs)
    from_run.load_lora_weights(str(xl_runs["lora"] / "final"), weight_name=LORA_FILE)
    from_kohya.load_lora_weights(str(path))
    want, got = _image(from_run), _image(from_kohya)
    assert np.abs(want - _image(plain)).max() > 1e-3  # the LoRA matters, so equality below means something
    assert np.abs(want - got).max() <= SAME


def test_diffusers_exports_reload(xl_runs, tmp_path):
    want_pipe = _pipe(xl_runs)
    want_pipe.load_lora_weights(str(xl_runs["lora"] / "final"), weight_name=LORA_FILE)
    want = _image(want_pipe)
    folder = export(xl_runs["lora"], "diffusers-lora", tmp_path / "lora")
    pipe = _pipe(xl_runs)
    pipe.load_lora_weights(str(folder))
    assert np.abs(_image(pipe) - want).max() <= SAME
    merged = export(xl_runs["lora"], "diffusers", tmp_path / "merged")
    fused = get_family("sdxl").load_pipeline(merged)
    fused.set_progress_bar_config(disable=True)
    assert np.abs(_image(fused) - want).max() <= 1e-4  # fused weights round differently than a live LoRA


def test_pivotal_embeddings_are_the_two_encoder_format(xl_runs, tmp_path):
    state = load_file(str(xl_runs["pivotal"] / "final" / "learned_embeds.safetensors"))
    assert set(state) == {"clip_l", "clip_g"}
    folder = export(xl_runs["pivotal"], "diffusers-lora", tmp_path / "piv")
    assert set(load_file(str(folder / "learned_embeds.safetensors"))) == {"clip_l", "clip_g"}
    merged = export(xl_runs["pivotal"], "diffusers", tmp_path / "piv-merged")
    assert "<sks>" in get_family("sdxl").load_pipeline(merged).tokenizer_2.get_vocab()


@pytest.mark.parametrize("fmt", ["a1111-embedding", "diffusers-embedding"])
def test_embedding_formats_write_both_encoders(xl_runs, tmp_path, fmt):
    path = export(xl_runs["pivotal"], fmt, tmp_path / "sks.safetensors")
    state = load_file(str(path))
    assert set(state) == {"clip_l", "clip_g"}
    assert state["clip_l"].shape[-1] != state["clip_g"].shape[-1]  # the two encoders' widths
    pipe = _pipe(xl_runs)
    get_family("sdxl").add_embeddings(pipe, path, ["<sks>"])
    assert "<sks>" in pipe.tokenizer.get_vocab() and "<sks>" in pipe.tokenizer_2.get_vocab()


def test_kohya_bundle_of_a_pivotal_run_draws_like_the_run(xl_runs, tmp_path):
    """LoRA + bundled ``bundle_emb.<token>.clip_l`` / ``.clip_g``: loaded into the base pipeline it
    gives the image the run itself gives."""
    from dreamlock.exporting.kohya import load_kohya_lora
    from dreamlock.generation import load_generator

    path = export(xl_runs["pivotal"], "kohya-lora", tmp_path / "piv.safetensors")
    state = load_file(str(path))
    assert {"bundle_emb.<sks>.clip_l", "bundle_emb.<sks>.clip_g"} <= set(state)
    pipe = _pipe(xl_runs)
    assert load_kohya_lora(pipe, path) == ["<sks>"]
    run_pipe = load_generator(xl_runs["pivotal"]).pipe
    prompt = "a photo of <sks> dog"  # the run's trigger as its learned token

    def draw(p):
        return p(prompt, num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                 output_type="np").images[0]

    pipe.scheduler = run_pipe.scheduler
    assert np.abs(draw(pipe) - draw(run_pipe)).max() <= SAME


def test_single_file_in_the_sgm_layout_reloads_exactly(xl_runs, tmp_path):
    """UNet and VAE as in SD, ``label_emb.0`` for the added embedding, CLIP ViT-L under
    ``conditioner.embedders.0.transformer.``, OpenCLIP bigG (fused q/k/v, text_projection) under
    ``conditioner.embedders.1.model.``; diffusers' single-file loader reads every weight back."""
    path = export(xl_runs["full"], "single-file", tmp_path / "xl.safetensors")
    state = load_file(str(path))
    for key in ("model.diffusion_model.label_emb.0.0.weight", "model.diffusion_model.label_emb.0.2.bias",
                "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
                "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
                "conditioner.embedders.1.model.text_projection", "first_stage_model.decoder.conv_out.weight"):
        assert key in state, key
    family = get_family("sdxl")
    got = family.pipeline_class.from_single_file(str(path), config=str(xl_runs["base"]), local_files_only=True)
    want = family.load_pipeline(xl_runs["full"] / "final" / "pipeline")
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(got, name).state_dict(), getattr(want, name).state_dict()
        assert set(a) == set(b), name
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        assert not bad, f"{name}: {bad[:3]}"
