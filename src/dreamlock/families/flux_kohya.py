"""FLUX.1 LoRA layer names in the kohya / BFL layout that sd-scripts writes and ComfyUI, Forge and
diffusers (``load_lora_weights``) read: ``lora_unet_double_blocks_3_img_attn_qkv`` and the like.

BFL's checkpoint fuses some linears that diffusers keeps apart: q, k, v of each stream (``qkv``),
and in single blocks q, k, v and the MLP input (``linear1``, whose MLP part is 4× wider). A kohya
LoRA on a fused layer is one ``lora_down`` / ``lora_up`` pair; :func:`bfl_name` says where a diffusers
layer goes in it (``exporting/kohya.py`` stacks the parts block-diagonally).
"""

from __future__ import annotations

import re

_QKV = {"to_q": 0, "to_k": 1, "to_v": 2}
_TXT_QKV = {"add_q_proj": 0, "add_k_proj": 1, "add_v_proj": 2}
_DOUBLE = {
    "attn.to_out.0": "img_attn_proj", "attn.to_add_out": "txt_attn_proj",
    "ff.net.0.proj": "img_mlp_0", "ff.net.2": "img_mlp_2",
    "ff_context.net.0.proj": "txt_mlp_0", "ff_context.net.2": "txt_mlp_2",
    "norm1.linear": "img_mod_lin", "norm1_context.linear": "txt_mod_lin",
}
_SINGLE = {"proj_out": "linear2", "norm.linear": "modulation_lin"}
_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in"}
QKV_RATIOS = (1, 1, 1)
LINEAR1_RATIOS = (1, 1, 1, 4)  # q, k, v, then the MLP input (mlp_ratio 4)


def bfl_name(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers FLUX transformer layer path -> (kohya name without the ``lora_unet_`` prefix,
    its part in the fused layer, the parts' relative output sizes); None when BFL has no such layer."""
    if path in _TOP:
        return _TOP[path], 0, (1,)
    m = re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", path)
    if m:
        i, rest = m.groups()
        leaf = rest.removeprefix("attn.")
        if rest.startswith("attn.") and leaf in _QKV:
            return f"double_blocks_{i}_img_attn_qkv", _QKV[leaf], QKV_RATIOS
        if rest.startswith("attn.") and leaf in _TXT_QKV:
            return f"double_blocks_{i}_txt_attn_qkv", _TXT_QKV[leaf], QKV_RATIOS
        return (f"double_blocks_{i}_{_DOUBLE[rest]}", 0, (1,)) if rest in _DOUBLE else None
    m = re.fullmatch(r"single_transformer_blocks\.(\d+)\.(.+)", path)
    if m:
        i, rest = m.groups()
        leaf = rest.removeprefix("attn.")
        if rest.startswith("attn.") and leaf in _QKV:
            return f"single_blocks_{i}_linear1", _QKV[leaf], LINEAR1_RATIOS
        if rest == "proj_mlp":
            return f"single_blocks_{i}_linear1", 3, LINEAR1_RATIOS
        return (f"single_blocks_{i}_{_SINGLE[rest]}", 0, (1,)) if rest in _SINGLE else None
    return None
