"""Single-file checkpoint: the whole pipeline in one ``.safetensors``, original LDM/A1111 key layout.

    model.diffusion_model.*                 UNet  (input_blocks / middle_block / output_blocks)
    first_stage_model.*                     VAE   (encoder.down.N.block.M / mid.attn_1 / decoder.up.N)
    cond_stage_model.transformer.text_model.*   CLIP text encoder (SD1 layout, as transformers names it)
    cond_stage_model.model.*                OpenCLIP text encoder (SD2 layout: transformer.resblocks.N,
                                            fused attn.in_proj), for text encoders with OpenCLIP's GELU

The diffusers -> LDM mapping is derived from the model's own config (number of levels,
``layers_per_block``, which levels have attention, which have down/up samplers), so it works for
any SD-architecture size, not only SD1.5's. Every tensor is mapped or the export fails: nothing is
silently dropped. Load it back with
``StableDiffusionPipeline.from_single_file(path, config=DIFFUSERS_FOLDER, local_files_only=True)``,
where the folder is the base model (or a ``--format diffusers`` export) of the same architecture.

SDXL (SGM layout): the same UNet and VAE names (``label_emb.0`` for the pooled/size embedding), CLIP
ViT-L under ``conditioner.embedders.0.transformer.``, OpenCLIP bigG under ``conditioner.embedders.1.model.``.
SD3 (Stability's ``sd3_medium_incl_clips_t5xxlfp16`` layout): the MMDiT under ``model.diffusion_model.``
(``families/sd3_layout.py``), the VAE as above, the encoders in transformers' names under
``text_encoders.clip_l/clip_g/t5xxl.transformer.``. FLUX.1 (BFL's ``flux1-dev.safetensors``): the transformer
alone, unprefixed (``families/flux_layout.py``); CLIP, T5 and the VAE stay separate files, as ComfyUI
and Forge load them (diffusers: ``FluxPipeline.from_single_file(path, config=BASE_FOLDER)`` takes them
from the folder).
Not covered: runs with learned tokens (a checkpoint file has no tokenizer to carry them).
An SD2 text encoder converted to diffusers has lost OpenCLIP's last block (SD2 conditions on the
penultimate one), so the file has one block fewer than the original; A1111 does not use that block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dreamlock.errors import WorkError
from dreamlock.exporting.common import ExportJob, base_name, cast_state, run_pipeline

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
_OPENCLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                   "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
_OPENCLIP_TOP = {"embeddings.token_embedding.weight": "token_embedding.weight",
                 "embeddings.position_embedding.weight": "positional_embedding",
                 "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's pooled-text + size/crop embedding
    "add_embedding.linear_2": "label_emb.0.2",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TOP = {"conv_in": "conv_in", "conv_out": "conv_out", "conv_norm_out": "norm_out"}


def _per_block(value: Any, n: int) -> list[int]:
    return [int(value)] * n if isinstance(value, int) else [int(v) for v in value]


def _resnet(rest: str) -> str:
    name, _, param = rest.partition(".")
    if name not in _UNET_RESNET:
        raise KeyError(rest)
    return f"{_UNET_RESNET[name]}.{param}"


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``UNet2DConditionModel`` state dict -> LDM ``openaimodel.UNetModel`` keys.

    ``input_blocks``: 0 = conv_in; then per level ``layers_per_block`` entries (``.0`` resnet,
    ``.1`` attention) and, except for the last level, one downsampler entry (``.0.op``).
    ``middle_block``: resnet, attention, resnet. ``output_blocks``: per up level
    ``layers_per_block + 1`` entries (``.0`` resnet, ``.1`` attention); the level's upsampler sits in
    its last entry, at ``.2`` after an attention, else at ``.1``.
    """
    n = len(config["down_block_types"])
    down_layers = _per_block(config["layers_per_block"], n)
    up_layers = [x + 1 for x in reversed(down_layers)]
    down_start = [1 + sum(x + 1 for x in down_layers[:b]) for b in range(n)]
    up_start = [sum(up_layers[:b]) for b in range(n)]
    up_has_attn = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}

    def convert(key: str) -> str:
        for old, new in _UNET_TOP.items():
            if key.startswith(old + "."):
                return new + key[len(old):]
        if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            return f"input_blocks.{down_start[b] + j}.0.{_resnet(rest)}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            return f"input_blocks.{down_start[b] + j}.1.{rest}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            b, rest = int(m[1]), m[2]
            return f"input_blocks.{down_start[b] + down_layers[b]}.0.op.{rest}"
        if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            return f"middle_block.1.{m[1]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            return f"output_blocks.{up_start[b] + j}.0.{_resnet(rest)}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            return f"output_blocks.{up_start[b] + j}.1.{rest}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            b, rest = int(m[1]), m[2]
            slot = 2 if b in up_has_attn else 1
            return f"output_blocks.{up_start[b] + up_layers[b] - 1}.{slot}.conv.{rest}"
        raise KeyError(key)

    return _convert_all(state, convert, "UNet")


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``AutoencoderKL`` -> LDM ``AutoencoderKL`` keys. Decoder levels are numbered in
    reverse (LDM ``up.0`` is the highest-resolution level, diffusers ``up_blocks.0`` the lowest);
    mid-block attention projections are 1x1 convolutions in LDM."""
    n_up = len(config["up_block_types"])

    def convert(key: str) -> str:
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            return key
        part, _, rest = key.partition(".")
        if part not in ("encoder", "decoder"):
            raise KeyError(key)
        for old, new in _VAE_TOP.items():
            if rest.startswith(old + "."):
                return f"{part}.{new}{rest[len(old):]}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
            return f"{part}.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", rest):
            return f"{part}.down.{m[1]}.downsample.conv.{m[2]}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
            level = n_up - 1 - int(m[1])
            return f"{part}.up.{level}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", rest):
            return f"{part}.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", rest):
            return f"{part}.mid.block_{int(m[1]) + 1}.{m[2].replace('conv_shortcut', 'nin_shortcut')}"
        if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)\.(weight|bias)", rest):
            if m[1] in _VAE_ATTN:
                return f"{part}.mid.attn_1.{_VAE_ATTN[m[1]]}.{m[2]}"
        raise KeyError(key)

    out = _convert_all(state, convert, "VAE")
    for key, value in out.items():
        if ".mid.attn_1." in key and value.ndim == 2:
            out[key] = value.reshape(*value.shape, 1, 1)  # linear [o, i] -> conv 1x1 [o, i, 1, 1]
    return out


def text_encoder_to_ldm(state: dict[str, Any]) -> dict[str, Any]:
    """transformers ``CLIPTextModel`` -> ``cond_stage_model.transformer.text_model.*`` (SD1 layout).
    transformers >= 5.6 dropped the ``text_model.`` level from the state dict: put it back (not on a
    ``CLIPTextModelWithProjection``'s ``text_projection``, which sits beside ``text_model``)."""
    return {("" if k.startswith(("text_model.", "text_projection.")) else "text_model.") + k: v for k, v in state.items()}


def text_encoder_to_openclip(state: dict[str, Any]) -> dict[str, Any]:
    """transformers ``CLIPTextModel`` -> OpenCLIP names (SD2 layout): q/k/v projections fused into
    ``attn.in_proj_*`` as OpenCLIP's ``nn.MultiheadAttention`` holds them."""
    import torch

    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.position_ids":
            continue  # a buffer, not a weight
        if key == "text_projection.weight":  # SDXL's second encoder: OpenCLIP keeps it as x @ P
            out["text_projection"] = value.T.contiguous()
            continue
        if key in _OPENCLIP_TOP:
            out[_OPENCLIP_TOP[key]] = value
            continue
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if m is None:
            raise WorkError(f"text encoder weight {key!r} has no place in the OpenCLIP layout; use --format diffusers")
        block, module, param = m.groups()
        if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            qkv.setdefault((block, param), {})[module[-6]] = value
        elif module in _OPENCLIP_LAYER:
            out[f"transformer.resblocks.{block}.{_OPENCLIP_LAYER[module]}.{param}"] = value
        else:
            raise WorkError(f"text encoder weight {key!r} has no place in the OpenCLIP layout; use --format diffusers")
    for (block, param), parts in qkv.items():
        out[f"transformer.resblocks.{block}.attn.in_proj_{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out




def text_encoder_as_is(state: dict[str, Any]) -> dict[str, Any]:
    """T5 (SD3's file): transformers' own names, the encoder's ``embed_tokens`` as a copy of ``shared``
    (tied in the model; safetensors stores no shared tensors, and diffusers' loader reads both)."""
    return {k: v.clone() if k == "encoder.embed_tokens.weight" else v for k, v in state.items()}


TEXT_LAYOUTS = {"clip": text_encoder_to_ldm, "openclip": text_encoder_to_openclip, "t5": text_encoder_as_is}


def _original_layout(convert, model) -> dict[str, Any]:
    """A transformer through its family's mapping (which fuses layers, so it takes the whole state)."""
    try:
        return convert(model.state_dict(), dict(model.config))
    except KeyError as e:
        raise WorkError(f"transformer weight {e.args[0]!r} has no place in the single-file layout; "
                        "use --format diffusers") from None


def _convert_all(state: dict[str, Any], convert, what: str) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        try:
            new = convert(key)
        except KeyError:
            raise WorkError(f"{what} weight {key!r} has no place in the LDM single-file layout; "
                            "this architecture is not supported by --format single-file (use --format diffusers)") from None
        if new in out:
            raise WorkError(f"{what} weights map twice to {new!r}; single-file export bug, please report it")
        out[new] = value
    return out


def pipeline_to_ldm(pipe, family_name: str = "sd") -> dict[str, Any]:
    """All weights of a pipeline under its family's single-file names (SD / SDXL: LDM / SGM; SD3:
    Stability's MMDiT file; FLUX.1: BFL's transformer file)."""
    from dreamlock.families import get_family

    family = get_family(family_name)
    denoiser = getattr(pipe, family.denoiser_name)
    if family.single_file_denoiser is None:
        converted = unet_to_ldm(denoiser.state_dict(), dict(denoiser.config))
    else:
        converted = _original_layout(family.single_file_denoiser, denoiser)
    state = {family.single_file_denoiser_prefix + k: v for k, v in converted.items()}
    if family.single_file_has_vae:
        state.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)).items()})
    for component, (prefix, layout) in family.single_file_text_layout(pipe).items():
        convert = TEXT_LAYOUTS[layout]
        state.update({prefix + k: v for k, v in convert(getattr(pipe, component).state_dict()).items()})
    return state


def export_single_file(job: ExportJob) -> Path:
    from safetensors.torch import save_file

    pipe = run_pipeline(job)
    state = cast_state(pipeline_to_ldm(pipe, job.info.family), job.dtype)
    path = job.out
    if job.final_out.suffix != ".safetensors":
        job.out.mkdir(parents=True, exist_ok=True)
        path = job.out / f"{job.run_name}.safetensors"
    meta = {
        "format": "pt",
        "dreamlock_run": job.run_name,
        "dreamlock_method": job.info.method,
        "dreamlock_base": base_name(job.info),
        "dreamlock_dtype": job.dtype_name,
    }
    save_file(state, str(path), metadata=meta)
    return path
