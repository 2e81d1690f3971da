"""SD3 and FLUX.1 on the family seam (tiny random models built from configs; plumbing, not
learning): prompts encode as diffusers' own pipelines encode them, the rectified-flow objective
noises and weights as diffusers' SD3 / FLUX scripts do, FLUX's distilled guidance is an input,
families refuse the keys and methods that do not apply to them in one line, and their LoRAs export
to files that diffusers' loaders read back to the run's own output (kohya / BFL keys for FLUX.1; kohya
MMDiT keys for SD3, read back by dreamlock's converter since diffusers has none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dreamlock.errors import UserError
from dreamlock.exporting import export
from dreamlock.exporting.common import LoraModule
from dreamlock.exporting.kohya import _fuse
from dreamlock.families import get_family
from dreamlock.families.build import FlowArch, save_tiny_pipeline
from dreamlock.families.flux_layout import LINEAR1_RATIOS, bfl_name
from dreamlock.families.objectives import FlowMatchObjective
from dreamlock.runs import LORA_FILE
from dreamlock.training.api import train
from dreamlock.training.config import TrainConfig
from dreamlock.training.validate import check_family

PROMPTS = ["a photo of sks dog", "a red star on the beach"]
SAME = 1e-5


# ---- prompts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_prompts_encode_as_the_diffusers_pipeline_encodes_them(tiny_bases, family):
    adapter = get_family(family).load(str(tiny_bases[family]))
    with torch.no_grad():
        cond = adapter.encode_text(PROMPTS)
        if family == "sd3":
            embeds, _, pooled, _ = adapter.pipe.encode_prompt(PROMPTS, PROMPTS, PROMPTS, do_classifier_free_guidance=False)
        else:
            embeds, pooled, _ = adapter.pipe.encode_prompt(PROMPTS, PROMPTS)
    assert torch.allclose(cond.embeds, embeds, atol=1e-6) and torch.allclose(cond.pooled, pooled, atol=1e-6)


def test_sd3_without_t5_encodes_zeros_in_its_place(tiny_bases):
    family = get_family("sd3")
    pipe = family.pipeline_class.from_pretrained(tiny_bases["sd3"], text_encoder_3=None, tokenizer_3=None)
    adapter = family(pipe)
    assert adapter.frozen_text_encoders() == []
    with torch.no_grad():
        cond = adapter.encode_text(PROMPTS)
        embeds, _, pooled, _ = pipe.encode_prompt(PROMPTS, PROMPTS, PROMPTS, do_classifier_free_guidance=False)
    assert torch.allclose(cond.embeds, embeds, atol=1e-6) and torch.allclose(cond.pooled, pooled, atol=1e-6)
    clip_length = pipe.tokenizer.model_max_length
    assert cond.embeds.shape[1] == clip_length + 256 and cond.embeds[:, clip_length:].abs().max() == 0


# ---- the objective -----------------------------------------------------------------------------
def _objective(scheme: str, **config) -> FlowMatchObjective:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchObjective(FlowMatchEulerDiscreteScheduler(**config).config, scheme)


def test_flow_noising_and_target():
    objective = _objective("none")
    x, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([250.0, 1000.0])
    noisy = objective.add_noise(x, noise, t)
    assert torch.allclose(noisy[0], 0.75 * x[0] + 0.25 * noise[0]) and torch.allclose(noisy[1], noise[1])
    assert torch.equal(objective.target(x, noise, t), noise - x)
    assert objective.weights(t, None) is None


def test_flow_timestep_sampling_follows_the_scheme():
    gen = torch.Generator().manual_seed(0)
    uniform = _objective("none").sample_t(20_000, gen) / 1000
    assert abs(uniform.mean().item() - 0.5) < 0.01 and 0 < uniform.min() and uniform.max() <= 1
    logit = _objective("logit_normal").sample_t(20_000, gen) / 1000
    assert abs(logit.mean().item() - 0.5) < 0.01 and logit.std() < uniform.std()  # mass in the middle
    shifted = _objective("none", shift=3.0).sample_t(20_000, gen) / 1000
    assert shifted.mean() > 0.6  # SD3's shift 3 draws noisier timesteps
    again = _objective("logit_normal").sample_t(5, torch.Generator().manual_seed(1))
    assert torch.equal(again, _objective("logit_normal").sample_t(5, torch.Generator().manual_seed(1)))


def test_flow_loss_weights():
    t = torch.tensor([100.0, 500.0])
    assert torch.allclose(_objective("sigma_sqrt").weights(t, None), torch.tensor([100.0, 4.0]))
    cosmap = _objective("cosmap").weights(t, None)
    assert cosmap.shape == (2,) and cosmap[1] > cosmap[0]


# ---- FLUX specifics ----------------------------------------------------------------------------
def test_flux_guidance_is_an_input_set_by_guidance_scale(tiny_bases, tmp_path, images_writer):
    adapter = get_family("flux").load(str(tiny_bases["flux"]))
    assert adapter.denoiser.config.guidance_embeds and adapter.train_guidance == 3.5  # diffusers' scripts' default
    config = TrainConfig(base=str(tiny_bases["flux"]), data=str(tmp_path), output=str(tmp_path / "r"), guidance_scale=1.0)
    adapter.configure(config)
    assert adapter.train_guidance == 1.0
    noisy, t = torch.randn(1, 16, 8, 8), torch.tensor([500.0])
    with torch.no_grad():
        cond = adapter.encode_text(PROMPTS[:1])
        low = adapter.predict(noisy, t, cond)
        adapter.train_guidance = 5.0
        high = adapter.predict(noisy, t, cond)
    assert low.shape == noisy.shape and (low - high).abs().max() > 1e-4


def test_flux_native_size_is_the_vae_sample_size(tiny_bases):
    adapter = get_family("flux").load(str(tiny_bases["flux"]))
    assert adapter.native_resolution == adapter.vae.config.sample_size == 32
    assert adapter.size_multiple == 2 * adapter.vae_scale_factor  # packed 2x2 latents


# ---- keys and methods each family refuses ------------------------------------------------------
@pytest.mark.parametrize("family, overrides, says", [
    ("sd3", dict(method="ti"), "cannot load learned tokens"),
    ("sd3", dict(method="pivotal"), "use --method lora or full"),
    ("flux", dict(snr_gamma=5.0), "use weighting_scheme"),
    ("sd", dict(weighting_scheme="logit_normal"), "weighting_scheme is for flow-matching"),
    ("sd3", dict(guidance_scale=3.5), "distilled guidance of FLUX.1-dev"),
])
def test_family_refuses_what_does_not_apply(tiny_bases, tmp_path, family, overrides, says):
    config = TrainConfig(base=str(tiny_bases[family]), data=str(tmp_path), output=str(tmp_path / "r"), **overrides)
    with pytest.raises(UserError, match=says) as e:
        check_family(config)
    assert "\n" not in str(e.value)


# ---- exports -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow_runs(tiny_bases, tmp_path_factory, images_writer):
    root = tmp_path_factory.mktemp("flow-runs")
    data = images_writer(root / "data", 3)
    flux_double = save_tiny_pipeline(root / "flux-double", FlowArch(single_layers=0), family="flux")
    common = dict(data=str(data), trigger="sks", class_word="dog", max_train_steps=3, learning_rate=5e-2,
                  embedding_lr=1e-1, rank=2, lora_alpha=4)
    return {
        "sd3": train(common | dict(base=str(tiny_bases["sd3"]), output=str(root / "sd3"), train_text_encoder=True)),
        "flux": train(common | dict(base=str(tiny_bases["flux"]), output=str(root / "flux"), train_text_encoder=True)),
        "flux-double": train(common | dict(base=str(flux_double), output=str(root / "flux-double"),
                                           train_text_encoder=True)),
        "flux-pivotal": train(common | dict(base=str(flux_double), output=str(root / "flux-pivotal"),
                                            method="pivotal")),  # double blocks only: see the kohya test
        "bases": {"sd3": tiny_bases["sd3"], "flux": tiny_bases["flux"], "flux-double": flux_double},
    }


def _pipe(base, family):
    pipe = get_family(family).load_pipeline(base)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe, prompt=PROMPTS[0]) -> np.ndarray:
    return pipe(prompt, num_inference_steps=2, guidance_scale=1.0, height=32, width=32,
                generator=torch.Generator().manual_seed(0), output_type="np").images[0]


def _run_image(flow_runs, run, family):
    pipe = _pipe(flow_runs["bases"][run], family)
    pipe.load_lora_weights(str(flow_runs[run] / "final"), weight_name=LORA_FILE)
    return _image(pipe)


def test_flux_kohya_lora_has_bfl_keys_and_loads_back_through_diffusers(flow_runs, tmp_path):
    """On a FLUX model with double-stream blocks only: diffusers' kohya converter assumes
    FLUX.1's full widths for single blocks' ``linear1`` (tested apart, below)."""
    path = export(flow_runs["flux-double"], "kohya-lora", tmp_path / "sks.safetensors")
    state = load_file(str(path))
    assert {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", "lora_unet_double_blocks_0_txt_attn_qkv.alpha",
            "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight",
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"} <= set(state)
    assert state["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"].shape[0] == 3 * 2  # q, k, v stacked
    assert state["lora_unet_double_blocks_0_img_attn_qkv.alpha"].item() == 3 * 4
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "flux1"
    pipe = _pipe(flow_runs["bases"]["flux-double"], "flux")
    plain = _image(pipe)
    pipe.load_lora_weights(str(path))
    want = _run_image(flow_runs, "flux-double", "flux")
    assert np.abs(want - plain).max() > 1e-3  # the LoRA matters, so equality below means something
    assert np.abs(_image(pipe) - want).max() <= SAME


def test_flux_single_block_lora_fuses_into_linear1_exactly(flow_runs, tmp_path):
    state = load_file(str(export(flow_runs["flux"], "kohya-lora", tmp_path / "sks.safetensors")))
    assert "lora_unet_single_blocks_0_linear1.lora_down.weight" in state
    torch.manual_seed(0)
    parts = {i: LoraModule("transformer", f"single_transformer_blocks.0.attn.to_{x}", torch.randn(2, 16),
                           torch.randn(16, 2), 4.0) for i, x in enumerate("qkv")}
    down, up, alpha = _fuse(parts, LINEAR1_RATIOS)
    fused = up @ down * alpha / down.shape[0]
    each = [m.up @ m.down * m.alpha / m.rank for m in parts.values()]
    assert torch.allclose(fused, torch.cat(each + [torch.zeros(64, 16)]), atol=1e-6)  # the MLP part: 4x wider, zero
    assert bfl_name("single_transformer_blocks.3.proj_mlp") == ("single_blocks_3_linear1", 3, LINEAR1_RATIOS)
    assert bfl_name("transformer_blocks.0.attn.norm_q") is None


@pytest.mark.parametrize("run, family", [("sd3", "sd3"), ("flux", "flux")])
def test_diffusers_exports_reload(flow_runs, tmp_path, run, family):
    want = _run_image(flow_runs, run, family)
    folder = export(flow_runs[run], "diffusers-lora", tmp_path / "lora")
    pipe = _pipe(flow_runs["bases"][run], family)
    pipe.load_lora_weights(str(folder))
    assert np.abs(_image(pipe) - want).max() <= SAME
    merged = export(flow_runs[run], "diffusers", tmp_path / "merged")
    fused = _pipe(merged, family)
    assert np.abs(_image(fused) - want).max() <= 1e-4  # fused weights round differently than a live LoRA


def test_sd3_kohya_lora_has_mmdit_keys_and_loads_back(flow_runs, tmp_path):
    """sd-scripts' SD3 layout (original MMDiT names, q/k/v fused); diffusers cannot read it, so both
    `load_kohya_lora` and `generate --lora` convert it (``kohya_to_diffusers``) — back to the run's image."""
    from dreamlock.exporting.kohya import load_kohya_lora
    from dreamlock.user_weights import add_lora

    path = export(flow_runs["sd3"], "kohya-lora", tmp_path / "sks.safetensors")
    state = load_file(str(path))
    assert {"lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight",
            "lora_unet_joint_blocks_0_context_block_attn_qkv.lora_up.weight",
            "lora_unet_joint_blocks_0_x_block_attn_proj.alpha",
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
            "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"} <= set(state)
    assert state["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight"].shape[0] == 3 * 2  # q, k, v stacked
    assert state["lora_unet_joint_blocks_0_x_block_attn_qkv.alpha"].item() == 3 * 4
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sd3"
    want = _run_image(flow_runs, "sd3", "sd3")
    pipe = _pipe(flow_runs["bases"]["sd3"], "sd3")
    assert np.abs(want - _image(pipe)).max() > 1e-3  # the LoRA matters, so equality below means something
    load_kohya_lora(pipe, path)
    assert np.abs(_image(pipe) - want).max() <= SAME
    pipe = _pipe(flow_runs["bases"]["sd3"], "sd3")
    add_lora(pipe, get_family("sd3"), path, "mine")
    assert np.abs(_image(pipe) - want).max() <= SAME


def test_sd3_kohya_names_are_the_original_mmdit_layers():
    from dreamlock.families.sd3_layout import mmdit_name

    assert mmdit_name("transformer_blocks.4.attn.add_v_proj") == ("joint_blocks_4_context_block_attn_qkv", 2, (1, 1, 1))
    assert mmdit_name("transformer_blocks.0.attn2.to_out.0") == ("joint_blocks_0_x_block_attn2_proj", 0, (1,))
    assert mmdit_name("time_text_embed.text_embedder.linear_2") == ("y_embedder_mlp_2", 0, (1,))
    assert mmdit_name("transformer_blocks.0.norm1_context.linear") is None  # scale/shift order: refused, not wrong
    assert mmdit_name("norm_out.linear") is None


def test_sd3_original_layout_is_the_inverse_of_diffusers_converter():
    """SD3.5-like (3 joint blocks, dual attention in the first, RMS q/k norms): diffusers' own
    single-file converter turns our original-layout keys back into every weight, exactly (the last
    block's context modulation and the final layer's are swapped back)."""
    from diffusers import SD3Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    from dreamlock.families.sd3_layout import transformer_to_original

    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8,
                                  num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16,
                                  pooled_projection_dim=24, out_channels=4, pos_embed_max_size=16,
                                  dual_attention_layers=(0,), qk_norm="rms_norm")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    original = transformer_to_original(state, dict(model.config))
    assert "joint_blocks.0.x_block.attn2.qkv.weight" in original and "final_layer.adaLN_modulation.1.bias" in original
    back = convert_sd3_transformer_checkpoint_to_diffusers(dict(original), caption_projection_dim=16)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


def test_flux_bfl_layout_is_the_inverse_of_diffusers_converter():
    """At FLUX.1's full widths (diffusers' converter hard-codes 3072 / 12288 to split ``linear1``):
    a meta-device model gives the names and shapes; real tensors keep each weight's first dimension
    (the one that is split and joined) and 1 for the rest, so this runs in milliseconds."""
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    from dreamlock.families.flux_layout import transformer_to_bfl

    with init_empty_weights():
        model = FluxTransformer2DModel(num_layers=2, num_single_layers=2, guidance_embeds=True)
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn((v.shape[0],) + (1,) * (v.ndim - 1), generator=g) for k, v in model.state_dict().items()}
    bfl = transformer_to_bfl(state)
    assert {"double_blocks.1.img_attn.qkv.weight", "single_blocks.0.linear1.bias", "guidance_in.out_layer.weight",
            "double_blocks.0.txt_attn.norm.key_norm.scale"} <= set(bfl)
    back = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    # and the kohya names are the same layers: BFL's module names with "." -> "_"
    layers = {k.rpartition(".")[0].replace(".", "_") for k in bfl}
    assert {bfl_name(p)[0] for p in ("single_transformer_blocks.1.proj_mlp", "transformer_blocks.0.norm1_context.linear",
                                     "transformer_blocks.1.attn.add_k_proj", "x_embedder")} <= layers


def test_sd3_single_file_reloads_to_the_runs_image(flow_runs, tmp_path):
    """The whole pipeline in Stability's layout, loaded back as `--base FILE --base-config FOLDER` does."""
    path = export(flow_runs["sd3"], "single-file", tmp_path / "model.safetensors")
    assert {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "first_stage_model.decoder.conv_in.weight",
            "text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight",
            "text_encoders.clip_g.transformer.text_projection.weight",
            "text_encoders.t5xxl.transformer.shared.weight"} <= set(load_file(str(path)))
    want = _run_image(flow_runs, "sd3", "sd3")
    pipe = get_family("sd3").load_pipeline(path, base_config=str(flow_runs["bases"]["sd3"]))
    pipe.set_progress_bar_config(disable=True)
    assert np.abs(_image(pipe) - want).max() <= 1e-4  # fused weights round differently than a live LoRA


def test_flux_single_file_is_the_runs_transformer_in_bfl_layout(flow_runs, tmp_path):
    """BFL's transformer file, unprefixed, nothing else (ComfyUI loads CLIP, T5 and the VAE apart):
    exactly the fused run's transformer through the mapping that diffusers' converter inverts (test
    above; diffusers cannot read a tiny FLUX file back: it hard-codes FLUX.1's widths)."""
    state = load_file(str(export(flow_runs["flux"], "single-file", tmp_path / "flux.safetensors")))
    fused = get_family("flux").load_pipeline(export(flow_runs["flux"], "diffusers", tmp_path / "merged")).transformer
    from dreamlock.families.flux_layout import transformer_to_bfl

    want = transformer_to_bfl(fused.state_dict())
    assert state.keys() == want.keys() and all(torch.equal(state[k], want[k]) for k in want)


def test_a_denoiser_only_file_loads_with_the_rest_from_the_folder(flow_runs, tmp_path):
    """The path `--base flux1-dev.safetensors --base-config FOLDER` takes (a file holding only the
    denoiser), run on SD3, whose transformer diffusers can read back at tiny sizes."""
    from safetensors.torch import save_file

    from dreamlock.exporting.single_file import pipeline_to_ldm
    from dreamlock.loading import _denoiser_file_with_folder

    base = flow_runs["bases"]["sd3"]
    pipe = _pipe(base, "sd3")
    only = {k: v.contiguous() for k, v in pipeline_to_ldm(pipe, "sd3").items() if k.startswith("model.diffusion_model.")}
    save_file(only, str(tmp_path / "transformer.safetensors"))
    loaded = _denoiser_file_with_folder(get_family("sd3"), tmp_path / "transformer.safetensors", base, torch.float32, {})
    loaded.set_progress_bar_config(disable=True)
    assert np.abs(_image(loaded) - _image(pipe)).max() <= SAME


def test_flux_pivotal_learns_a_clip_token_and_exports_it(flow_runs, tmp_path):
    from dreamlock.exporting.kohya import load_kohya_lora
    from dreamlock.generation import load_generator

    state = load_file(str(flow_runs["flux-pivotal"] / "final" / "learned_embeds.safetensors"))
    assert list(state) == ["<sks>"] and state["<sks>"].shape[-1] == FlowArch().text_hidden  # CLIP only, never T5
    path = export(flow_runs["flux-pivotal"], "kohya-lora", tmp_path / "piv.safetensors")
    assert "bundle_emb.<sks>.string_to_param.*" in load_file(str(path))
    pipe = _pipe(flow_runs["bases"]["flux-double"], "flux")
    plain = _image(pipe, "a photo of <sks> dog")
    assert load_kohya_lora(pipe, path) == ["<sks>"]
    run_pipe = load_generator(flow_runs["flux-pivotal"]).pipe
    pipe.scheduler = run_pipe.scheduler
    want = _image(run_pipe, "a photo of <sks> dog")
    assert np.abs(want - plain).max() > 1e-3
    assert np.abs(_image(pipe, "a photo of <sks> dog") - want).max() <= 1e-4


def test_sd3_trains_and_samples_without_t5_when_asked(tiny_bases, tmp_path, images_writer):
    from dreamlock.generation import load_generator
    from dreamlock.runs import read_run
    from dreamlock.training.api import prepare_trainer

    data = images_writer(tmp_path / "data", 2)
    common = dict(base=str(tiny_bases["sd3"]), data=str(data), trigger="sks", class_word="dog", max_train_steps=1)
    trainer = prepare_trainer(TrainConfig(output=str(tmp_path / "probe"), drop_t5=True, **common))
    assert trainer.adapter.pipe.text_encoder_3 is None and trainer.adapter.pipe.tokenizer_3 is None
    run = train(common | dict(output=str(tmp_path / "run"), drop_t5=True))
    assert read_run(run).without == ["text_encoder_3", "tokenizer_3"]
    generator = load_generator(run)
    assert generator.pipe.text_encoder_3 is None  # samples as it trained: zeros in T5's place
    assert generator.images(PROMPTS[0], [0], steps=2, guidance=1.0)[0].size == (32, 32)
    with pytest.raises(UserError, match="drop_t5 is for SD3"):
        check_family(TrainConfig(base=str(tiny_bases["flux"]), data=str(data), output=str(tmp_path / "r"), drop_t5=True))
