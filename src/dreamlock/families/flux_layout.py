"""FLUX.1 in BFL's original layout (``flux1-dev.safetensors``, sd-scripts, ComfyUI, Forge), from
diffusers' ``FluxTransformer2DModel``: kohya LoRA names (``lora_unet_double_blocks_3_img_attn_qkv``: the
BFL module name with ``.`` -> ``_``; diffusers' ``load_lora_weights`` reads them) and single-file keys.

BFL's checkpoint fuses some linears that diffusers keeps apart: q, k, v of each stream (``qkv``),
and in single blocks q, k, v and the MLP input (``linear1``, whose MLP part is 4× wider). A kohya
LoRA on a fused layer is one ``lora_down`` / ``lora_up`` pair; :func:`bfl_name` says where a diffusers
layer goes in it (``exporting/kohya.py`` stacks the parts block-diagonally). The single-file mapping
is the inverse of diffusers' ``convert_flux_transformer_checkpoint_to_diffusers`` (the final layer's
modulation swapped back; RMS norms' ``weight`` is BFL's ``scale``).
"""

from __future__ import annotations

import re
from typing import Any

from dreamlock.families.layout import find_layer, kohya_form, to_original

QKV_RATIOS = (1, 1, 1)
LINEAR1_RATIOS = (1, 1, 1, 4)  # q, k, v, then the MLP input (mlp_ratio 4)
_ONE = (1,)

#: diffusers layer (inside a block) -> (BFL layer, part in it, the parts' relative output sizes)
_DOUBLE = {
    "attn.to_q": ("img_attn.qkv", 0, QKV_RATIOS), "attn.to_k": ("img_attn.qkv", 1, QKV_RATIOS),
    "attn.to_v": ("img_attn.qkv", 2, QKV_RATIOS),
    "attn.add_q_proj": ("txt_attn.qkv", 0, QKV_RATIOS), "attn.add_k_proj": ("txt_attn.qkv", 1, QKV_RATIOS),
    "attn.add_v_proj": ("txt_attn.qkv", 2, QKV_RATIOS),
    "attn.to_out.0": ("img_attn.proj", 0, _ONE), "attn.to_add_out": ("txt_attn.proj", 0, _ONE),
    "ff.net.0.proj": ("img_mlp.0", 0, _ONE), "ff.net.2": ("img_mlp.2", 0, _ONE),
    "ff_context.net.0.proj": ("txt_mlp.0", 0, _ONE), "ff_context.net.2": ("txt_mlp.2", 0, _ONE),
    "norm1.linear": ("img_mod.lin", 0, _ONE), "norm1_context.linear": ("txt_mod.lin", 0, _ONE),
}
_SINGLE = {
    "attn.to_q": ("linear1", 0, LINEAR1_RATIOS), "attn.to_k": ("linear1", 1, LINEAR1_RATIOS),
    "attn.to_v": ("linear1", 2, LINEAR1_RATIOS), "proj_mlp": ("linear1", 3, LINEAR1_RATIOS),
    "proj_out": ("linear2", 0, _ONE), "norm.linear": ("modulation.lin", 0, _ONE),
}
_BLOCKS = ((re.compile(r"transformer_blocks\.(\d+)\.(.+)"), "double_blocks", _DOUBLE),
           (re.compile(r"single_transformer_blocks\.(\d+)\.(.+)"), "single_blocks", _SINGLE))
_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in", "proj_out": "final_layer.linear",
        "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
        "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
        "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer"}
#: RMS norms (diffusers ``weight`` = BFL ``scale``)
_NORMS = {"double_blocks": {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
                            "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"},
          "single_blocks": {"attn.norm_q": "norm.query_norm", "attn.norm_k": "norm.key_norm"}}
#: the kohya names of top-level layers (sd-scripts trains only the embedders among them)
_KOHYA_TOP = ("x_embedder", "context_embedder")


def _original(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    return find_layer(path, _TOP, _BLOCKS)


def bfl_name(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers FLUX transformer layer path -> (kohya name without the ``lora_unet_`` prefix,
    its part in the fused layer, the parts' relative output sizes); None when BFL has no such layer
    (or, at the top level, sd-scripts gives it no LoRA name)."""
    if path in _TOP and path not in _KOHYA_TOP:
        return None
    return kohya_form(_original(path))


def transformer_to_bfl(state: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """diffusers ``FluxTransformer2DModel`` state dict -> BFL keys (no prefix); KeyError on a weight
    that has no place there."""

    def other(key: str) -> tuple[str, bool] | None:
        module, _, param = key.rpartition(".")
        if module == "norm_out.linear":
            return f"final_layer.adaLN_modulation.1.{param}", True
        for pattern, prefix, _ in _BLOCKS:
            m = pattern.fullmatch(module)
            if m and m.group(2) in _NORMS[prefix] and param == "weight":
                return f"{prefix}.{m.group(1)}.{_NORMS[prefix][m.group(2)]}.scale", False
        return None

    return to_original(state, _original, other)
