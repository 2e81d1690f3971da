"""single-file export (LDM/A1111 key layout). Tiny random models: these tests prove the key mapping
and that diffusers' own single-file loader reads every weight back exactly, not quality."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from export_helpers import load_pipe
from dreamlock.exporting import export


def _from_single_file(path, config, dtype=torch.float32):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_single_file(
        str(path), config=str(config), local_files_only=True, dtype=dtype,
        safety_checker=None, requires_safety_checker=False,
    )


def _assert_same_weights(a, b):
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb), name
        bad = [k for k in sa if not torch.equal(sa[k], sb[k])]
        assert not bad, f"{name}: {bad[:3]}"


@pytest.mark.parametrize("which", ["full", "full3"])
def test_single_file_reloads_exactly(runs, out_dir, which):
    run, config = (runs.full, runs.base) if which == "full" else (runs.full3, runs.base3)
    path = export(run, "single-file", out_dir / "model.safetensors")
    state = load_file(str(path))
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model."))
               for k in state)
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # conv 1x1 in LDM
    if which == "full":  # 2 levels, 1 layer per block, attention on the lower level only
        for key in ("model.diffusion_model.input_blocks.0.0.weight",
                    "model.diffusion_model.input_blocks.1.0.in_layers.2.weight",
                    "model.diffusion_model.input_blocks.2.0.op.weight",
                    "model.diffusion_model.input_blocks.3.1.proj_in.weight",
                    "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
                    "model.diffusion_model.middle_block.2.emb_layers.1.weight",
                    "model.diffusion_model.output_blocks.1.2.conv.weight",
                    "model.diffusion_model.output_blocks.3.0.skip_connection.weight",
                    "model.diffusion_model.out.2.weight",
                    "first_stage_model.decoder.up.1.upsample.conv.weight",
                    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"):
            assert key in state, key
    else:  # 3 levels, 2 layers per block
        for key in ("model.diffusion_model.input_blocks.3.0.op.weight",
                    "model.diffusion_model.input_blocks.6.0.op.weight",
                    "model.diffusion_model.input_blocks.8.1.proj_out.weight",
                    "model.diffusion_model.output_blocks.2.2.conv.weight",
                    "model.diffusion_model.output_blocks.5.2.conv.weight",
                    "model.diffusion_model.output_blocks.8.0.in_layers.0.weight",
                    "first_stage_model.decoder.up.2.block.1.conv1.weight"):
            assert key in state, key
    original = load_pipe(run / "final" / "pipeline")
    _assert_same_weights(_from_single_file(path, config), original)


def test_single_file_of_lora_run_is_the_fused_model(runs, out_dir):
    """single-file of a LoRA run == diffusers export of it (both fuse the LoRA the same way)."""
    path = export(runs.lora, "single-file", out_dir / "fused.safetensors")
    folder = export(runs.lora, "diffusers", out_dir / "fused")
    _assert_same_weights(_from_single_file(path, runs.base), load_pipe(folder))


def test_single_file_fp16(runs, out_dir):
    path = export(runs.full, "single-file", out_dir / "m16.safetensors", dtype="fp16")
    assert {t.dtype for t in load_file(str(path)).values()} == {torch.float16}
    reloaded = _from_single_file(path, runs.base, torch.float16)
    original = load_pipe(runs.full / "final" / "pipeline")
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(reloaded, name).state_dict(), getattr(original, name).state_dict()
        assert all(torch.equal(sa[k], sb[k].half()) for k in sb), name


def test_sd2_text_encoder_is_written_in_the_openclip_layout(tmp_path, images_writer):
    """An SD2-style tiny model (v-prediction, OpenCLIP's GELU text encoder, linear attention
    projections): the text encoder goes under ``cond_stage_model.model.`` with fused q/k/v, and
    diffusers' single-file loader reads every weight back exactly."""
    from dreamlock.families.build import SDArch, save_tiny_pipeline
    from dreamlock.training.api import train

    arch = SDArch(prediction_type="v_prediction", text_act="gelu", linear_projection=True)
    base = save_tiny_pipeline(tmp_path / "sd2", arch)
    run = train(base=str(base), data=str(images_writer(tmp_path / "data", 2)), output=str(tmp_path / "run"),
                method="full", train_text_encoder=True, max_train_steps=1, learning_rate=1e-3, class_word="dog")
    path = export(run, "single-file", tmp_path / "sd2.safetensors")
    state = load_file(str(path))
    text = {k for k in state if k.startswith("cond_stage_model.")}
    assert text and all(k.startswith("cond_stage_model.model.") for k in text)
    for key in ("token_embedding.weight", "positional_embedding", "ln_final.weight",
                "transformer.resblocks.1.attn.in_proj_weight", "transformer.resblocks.0.attn.out_proj.bias",
                "transformer.resblocks.0.mlp.c_fc.weight", "transformer.resblocks.1.ln_2.bias"):
        assert "cond_stage_model.model." + key in state, key
    assert state["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"].shape[0] == 3 * arch.text_hidden
    _assert_same_weights(_from_single_file(path, base), load_pipe(run / "final" / "pipeline"))
