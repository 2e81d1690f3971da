"""kohya-lora export. Tiny random models: these tests prove plumbing (names, alpha, loading), not quality.

Tolerance for "same image": max abs difference <= 1e-5 on images in [0, 1] (fp32, CPU, 2 steps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from export_helpers import ALPHA, RANK, TE_TARGETS, UNET_TARGETS, image, load_pipe
from dreamlock.exporting import export

SAME = 1e-5
DIFFERENT = 1e-3


def _expected_names(runs, text_encoder: bool) -> set[str]:
    """kohya names of every layer the LoRA targets, listed from the models themselves."""
    pipe = load_pipe(runs.base)
    names = {
        "lora_unet_" + n.replace(".", "_")
        for n, _ in pipe.unet.named_modules()
        if any(n.endswith("." + t) for t in UNET_TARGETS)
    }
    if text_encoder:
        te = pipe.text_encoder
        for n, _ in te.named_modules():
            if any(n.endswith("." + t) for t in TE_TARGETS):
                full = n if n.startswith("text_model.") else "text_model." + n
                names.add("lora_te_" + full.replace(".", "_"))
    return names


def test_kohya_keys_alpha_and_metadata(runs, out_dir):
    path = export(runs.lora, "kohya-lora", out_dir / "sks.safetensors")
    assert path == out_dir / "sks.safetensors"
    state = load_file(str(path))
    names = _expected_names(runs, text_encoder=True)
    assert set(state) == {f"{n}.{s}" for n in names for s in ("lora_down.weight", "lora_up.weight", "alpha")}
    # spelled out, as A1111 / ComfyUI expect them
    for key in (
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0.lora_up.weight",
        "lora_unet_up_blocks_0_attentions_1_transformer_blocks_0_attn2_to_k.alpha",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
        "lora_te_text_model_encoder_layers_1_self_attn_out_proj.alpha",
    ):
        assert key in state, key
    for key, t in state.items():
        if key.endswith(".alpha"):
            assert t.shape == () and t.dtype == torch.float32 and t.item() == ALPHA
        elif key.endswith(".lora_down.weight"):
            assert t.shape[0] == RANK
        else:
            assert t.shape[1] == RANK
    original = load_file(str(runs.lora / "final" / "pytorch_lora_weights.safetensors"))
    assert torch.equal(
        state["lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight"],
        original["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight"],
    )
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_network_dim"] == str(RANK) and float(meta["ss_network_alpha"]) == ALPHA
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_v2"] == "False"
    assert meta["dreamlock_alpha_source"] == "file metadata"


def test_diffusers_kohya_converter_maps_back_to_the_original_layers(runs, out_dir):
    """diffusers' own kohya -> peft conversion gives back exactly the run's tensors and alpha 8."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft, convert_unet_state_dict_to_peft

    path = export(runs.lora, "kohya-lora", out_dir / "k.safetensors")
    converted, alphas = StableDiffusionPipeline.lora_state_dict(str(path))
    assert alphas and set(alphas.values()) == {ALPHA}
    back = {}
    for comp in ("unet", "text_encoder"):
        part = {k[len(comp) + 1:]: v for k, v in converted.items() if k.startswith(comp + ".")}
        # the conversions diffusers applies in load_lora_into_unet / load_lora_into_text_encoder
        if comp == "unet":
            part = convert_unet_state_dict_to_peft(part)
        else:
            part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
        back.update({f"{comp}.{k.removeprefix('text_model.')}": v for k, v in part.items()})
    original = load_file(str(runs.lora / "final" / "pytorch_lora_weights.safetensors"))
    assert set(back) == set(original)
    assert all(torch.equal(back[k], original[k]) for k in original)


def test_kohya_file_loaded_by_diffusers_gives_the_same_image(runs, out_dir, base_image, lora_reference_image):
    path = export(runs.lora, "kohya-lora", out_dir / "k.safetensors")
    pipe = load_pipe(runs.base)
    pipe.load_lora_weights(str(path))
    kohya_image = image(pipe)
    assert np.abs(lora_reference_image - base_image).max() > 1e-2  # the LoRA has an effect
    diff = np.abs(kohya_image - lora_reference_image).max()
    assert diff <= SAME, diff
    # and alpha is read: the same file with alpha = rank (scale 1 instead of 2) gives another image
    state = load_file(str(path))
    state = {k: (torch.tensor(float(RANK)) if k.endswith(".alpha") else v) for k, v in state.items()}
    pipe = load_pipe(runs.base)
    pipe.load_lora_weights(state)
    assert np.abs(image(pipe) - lora_reference_image).max() > DIFFERENT


def test_kohya_conv_and_feed_forward_layers(runs, out_dir, base_image):
    """A LoRA on convs (3x3 and 1x1), feed-forward, proj_in/out, time embedding, samplers: kohya
    names load through diffusers' converter onto the same layers (same image)."""
    path = export(runs.lora_wide, "kohya-lora", out_dir / "w.safetensors")
    state = load_file(str(path))
    for key in ("lora_unet_conv_in.lora_down.weight",
                "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight",
                "lora_unet_down_blocks_0_downsamplers_0_conv.lora_up.weight",
                "lora_unet_up_blocks_0_upsamplers_0_conv.alpha",
                "lora_unet_up_blocks_1_resnets_0_conv_shortcut.lora_down.weight",
                "lora_unet_mid_block_resnets_1_time_emb_proj.lora_down.weight",
                "lora_unet_time_embedding_linear_1.lora_up.weight",
                "lora_unet_up_blocks_0_attentions_1_transformer_blocks_0_ff_net_0_proj.lora_down.weight",
                "lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight"):
        assert key in state, key
    assert state["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"].shape[-2:] == (3, 3)
    with safe_open(str(path), "pt") as f:
        assert "conv_dim" in f.metadata()["ss_network_args"]
    ref = load_pipe(runs.base)
    ref.load_lora_weights(str(runs.lora_wide / "final"))
    pipe = load_pipe(runs.base)
    pipe.load_lora_weights(str(path))
    ref_image = image(ref)
    assert np.abs(ref_image - base_image).max() > 1e-2
    diff = np.abs(image(pipe) - ref_image).max()
    assert diff <= SAME, diff


def test_per_layer_rank_and_alpha(runs, out_dir, base_image):
    """peft rank_pattern / alpha_pattern end up in each layer's shapes and ``.alpha``; fusing honours them.

    (diffusers 0.42's kohya loader does not: it reads the varying ``.alpha`` values into an
    alpha_pattern whose keys match no layer and uses the most common alpha everywhere, so no image
    comparison through diffusers here; A1111/ComfyUI read ``.alpha`` per layer.)"""
    path = export(runs.lora_pattern, "kohya-lora", out_dir / "p.safetensors")
    state = load_file(str(path))
    for key, t in state.items():
        if key.endswith(".alpha"):
            assert t.item() == (1.0 if key.endswith("attn2_to_k.alpha") else ALPHA), key
        if key.endswith(".lora_down.weight"):
            assert t.shape[0] == (2 if "attn1_to_q" in key else RANK), key
    assert any(k.endswith("attn2_to_k.alpha") for k in state) and any("attn1_to_q" in k for k in state)
    ref = load_pipe(runs.base)
    ref.load_lora_weights(str(runs.lora_pattern / "final"))  # diffusers format: alpha_pattern from metadata
    fused = load_pipe(export(runs.lora_pattern, "diffusers", out_dir / "fused"))
    diff = np.abs(image(fused) - image(ref)).max()
    assert diff <= SAME, diff


def test_alpha_from_config_toml_without_file_metadata(runs, out_dir):
    path = export(runs.lora_nometa, "kohya-lora", out_dir / "k.safetensors")
    state = load_file(str(path))
    assert not any(k.startswith("lora_te_") for k in state)
    assert set(state) == {f"{n}.{s}" for n in _expected_names(runs, False) for s in ("lora_down.weight", "lora_up.weight", "alpha")}
    assert {v.item() for k, v in state.items() if k.endswith(".alpha")} == {ALPHA}
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["dreamlock_alpha_source"] == "config.toml lora_alpha"


def test_pivotal_bundles_embeddings(runs, out_dir):
    from dreamlock.exporting.kohya import load_kohya_lora

    path = export(runs.pivotal, "kohya-lora", out_dir / "p.safetensors")
    state = load_file(str(path))
    original = load_file(str(runs.pivotal / "final" / "learned_embeds.safetensors"))
    assert torch.equal(state["bundle_emb.<pvt>.string_to_param.*"], original["<pvt>"])
    # diffusers' load_lora_weights does not accept bundled embeddings (every key must be a LoRA key)...
    with pytest.raises(ValueError):
        load_pipe(runs.base).load_lora_weights(str(path))
    # ...so load_kohya_lora splits them off; the result equals base + embeddings + diffusers-format LoRA
    pipe = load_pipe(runs.base)
    assert load_kohya_lora(pipe, path) == ["<pvt>"]
    ref = load_pipe(runs.base)
    ref.load_textual_inversion({"<pvt>": original["<pvt>"]}, token="<pvt>")
    ref.load_lora_weights(str(runs.pivotal / "final"))
    prompt = "a photo of <pvt> dog"
    diff = np.abs(image(pipe, prompt) - image(ref, prompt)).max()
    assert diff <= SAME, diff


def test_kohya_fp16_and_lora_scale(runs, out_dir):
    path = export(runs.lora, "kohya-lora", out_dir / "k16.safetensors", dtype="fp16", lora_scale=0.5)
    state = load_file(str(path))
    original = load_file(str(runs.lora / "final" / "pytorch_lora_weights.safetensors"))
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v"
    assert state[f"{key}.lora_down.weight"].dtype == torch.float16
    assert state[f"{key}.alpha"].dtype == torch.float32
    up = original["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_B.weight"]
    assert torch.equal(state[f"{key}.lora_up.weight"], (up * 0.5).half())
