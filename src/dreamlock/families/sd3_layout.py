"""SD3 / SD3.5 in the original MMDiT layout (Stability's checkpoints, sd-scripts, ComfyUI), from
diffusers' ``SD3Transformer2DModel``: kohya LoRA names (``lora_unet_joint_blocks_3_x_block_attn_qkv``:
the original module name with ``.`` -> ``_``) and single-file weight keys.

The original fuses q, k, v of each stream into one ``qkv`` linear (diffusers' own single-file
converter, ``convert_sd3_transformer_checkpoint_to_diffusers``, splits it: this is its inverse). A kohya
LoRA on a fused layer is one ``lora_down`` / ``lora_up`` pair, stacked block-diagonally from the
diffusers layers (``exporting/kohya.py``). The context stream's modulation (``norm1_context``) and
the final layer's store scale and shift in the other order in the last block / final layer: the
single-file converter swaps them back; for LoRAs a path does not say which block is last, so a LoRA
on them has no kohya name and is refused with advice instead of being written wrong (the default
targets are the attention projections). diffusers has no reader for the kohya layout;
:func:`dreamlock.exporting.kohya.kohya_to_diffusers` loads it.
"""

from __future__ import annotations

import re
from typing import Any

from dreamlock.families.layout import find_layer, kohya_form, to_original

QKV_RATIOS = (1, 1, 1)
_ONE = (1,)

#: diffusers layer (inside a joint block) -> (original layer, part in it, the parts' relative output sizes)
_JOINT = {
    "attn.to_q": ("x_block.attn.qkv", 0, QKV_RATIOS), "attn.to_k": ("x_block.attn.qkv", 1, QKV_RATIOS),
    "attn.to_v": ("x_block.attn.qkv", 2, QKV_RATIOS),
    "attn.add_q_proj": ("context_block.attn.qkv", 0, QKV_RATIOS),
    "attn.add_k_proj": ("context_block.attn.qkv", 1, QKV_RATIOS),
    "attn.add_v_proj": ("context_block.attn.qkv", 2, QKV_RATIOS),
    "attn.to_out.0": ("x_block.attn.proj", 0, _ONE), "attn.to_add_out": ("context_block.attn.proj", 0, _ONE),
    "attn2.to_q": ("x_block.attn2.qkv", 0, QKV_RATIOS), "attn2.to_k": ("x_block.attn2.qkv", 1, QKV_RATIOS),
    "attn2.to_v": ("x_block.attn2.qkv", 2, QKV_RATIOS), "attn2.to_out.0": ("x_block.attn2.proj", 0, _ONE),
    "ff.net.0.proj": ("x_block.mlp.fc1", 0, _ONE), "ff.net.2": ("x_block.mlp.fc2", 0, _ONE),
    "ff_context.net.0.proj": ("context_block.mlp.fc1", 0, _ONE), "ff_context.net.2": ("context_block.mlp.fc2", 0, _ONE),
    "norm1.linear": ("x_block.adaLN_modulation.1", 0, _ONE),
}
#: layers that are neither LoRA targets nor fused: norms (weights only) and the context modulation
_JOINT_OTHER = {
    "attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
    "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k",
    "norm1_context.linear": "context_block.adaLN_modulation.1",  # swapped in the last block
}
_TOP = {
    "context_embedder": "context_embedder", "proj_out": "final_layer.linear",
    "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
    "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
}
_TOP_OTHER = {"pos_embed.proj": "x_embedder.proj", "norm_out.linear": "final_layer.adaLN_modulation.1"}  # the latter swapped
_BLOCK = re.compile(r"transformer_blocks\.(\d+)\.(.+)")


def _original(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers linear layer path -> (original dotted name, part, ratios); None if not a named linear."""
    return find_layer(path, _TOP, ((_BLOCK, "joint_blocks", _JOINT),))


def mmdit_name(path: str) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers SD3 transformer layer path -> (kohya name without the ``lora_unet_`` prefix, its
    part in the fused layer, the parts' relative output sizes); None when the layer has no name here."""
    return kohya_form(_original(path))


def transformer_to_original(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``SD3Transformer2DModel`` state dict -> original MMDiT keys (no prefix); raises
    KeyError on a weight that has no place there."""
    last = int(config["num_layers"]) - 1

    def other(key: str) -> tuple[str, bool] | None:
        if key == "pos_embed.pos_embed":
            return "pos_embed", False
        module, _, param = key.rpartition(".")
        m = _BLOCK.fullmatch(module)
        if m and m.group(2) in _JOINT_OTHER:
            swap = m.group(2) == "norm1_context.linear" and int(m.group(1)) == last
            return f"joint_blocks.{m.group(1)}.{_JOINT_OTHER[m.group(2)]}.{param}", swap
        if module in _TOP_OTHER:
            return f"{_TOP_OTHER[module]}.{param}", module == "norm_out.linear"
        return None

    return to_original(state, _original, other)
