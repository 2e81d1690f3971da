"""FLUX.1 LoRA layer names in the kohya / BFL layout that sd-scripts writes and ComfyUI, Forge and
diffusers (``load_lora_weights``) read: ``lora_unet_double_blocks_3_img_attn_qkv`` and the like.

BFL's checkpoint fuses some linears that diffusers keeps apart: q, k, v of each stream (``qkv``),
and in single blocks q, k, v and the MLP input (``linear1``, whose MLP part is 4× wider). A kohya
LoRA on a fused layer is one ``lora_down`` / ``lora_up`` pair; :func:`bfl_name` says where a diffusers
layer goes in it (``exporting/kohya.py`` stacks the parts block-diagonally).
"""

from __future__ import annotations

import re

QKV_RATIOS = (1, 1, 1)
LINEAR1_RATIOS = (1, 1, 1, 4)  # q, k, v, then the MLP input (mlp_ratio 4)
_ONE = (1,)

#: diffusers layer (inside a block) -> (BFL layer, part in it, the parts' relative output sizes)
_DOUBLE = {
    "attn.to_q": ("img_attn_qkv", 0, QKV_RATIOS), "attn.to_k": ("img_attn_qkv", 1, QKV_RATIOS),
    "attn.to_v": ("img_attn_qkv", 2, QKV_RATIOS),
    "attn.add_q_proj": ("txt_attn_qkv", 0, QKV_RATIOS), "attn.add_k_proj": ("txt_attn_qkv", 1, QKV_RATIOS),
    "attn.add_v_proj": ("txt_attn_qkv", 2, QKV_RATIOS),
    "attn.to_out.0": ("img_attn_proj", 0, _ONE), "attn.to_add_out": ("txt_attn_proj", 0, _ONE),
    "ff.net.0.proj": ("img_mlp_0", 0, _ONE), "ff.net.2": ("img_mlp_2", 0, _ONE),
    "ff_context.net.0.proj": ("txt_mlp_0", 0, _ONE), "ff_context.net.2": ("txt_mlp_2", 0, _ONE),
    "norm1.linear": ("img_mod_lin", 0, _ONE), "norm1_context.linear": ("txt_mod_lin", 0, _ONE),
}
_SINGLE = {
    "attn.to_q": ("linear1", 0, LINEAR1_RATIOS), "attn.to_k": ("linear1", 1, LINEAR1_RATIOS),
    "attn.to_v": ("linear1", 2, LINEAR1_RATIOS), "proj_mlp": ("linear1", 3, LINEAR1_RATIOS),
    "proj_out": ("linear2", 0, _ONE), "norm.linear": ("modulation_lin", 0, _ONE),
}
_BLOCKS = ((re.compile(r"transformer_blocks\.(\d+)\.(.+)"), "double_blocks", _DOUBLE),
           (re.compile(r"single_transformer_blocks\.(\d+)\.(.+)"), "single_blocks", _SINGLE))
_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in"}


def bfl_name(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers FLUX transformer layer path -> (kohya name without the ``lora_unet_`` prefix,
    its part in the fused layer, the parts' relative output sizes); None when BFL has no such layer."""
    if path in _TOP:
        return _TOP[path], 0, _ONE
    for pattern, prefix, layers in _BLOCKS:
        m = pattern.fullmatch(path)
        if m and m.group(2) in layers:
            name, part, ratios = layers[m.group(2)]
            return f"{prefix}_{m.group(1)}_{name}", part, ratios
    return None
