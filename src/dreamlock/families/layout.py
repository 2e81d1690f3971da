"""What the original-layout mappings of transformer families share (``sd3_layout``, ``flux_layout``):
diffusers keeps q, k, v (and FLUX's single-block MLP input) as separate linears where the original
checkpoints fuse them, and stores some modulations' scale and shift the other way round."""

from __future__ import annotations

import re
from typing import Any, Callable

#: diffusers layer path -> (original dotted layer name, its part in a fused layer, the parts' relative sizes)
LinearName = Callable[[str], "tuple[str, int, tuple[int, ...]] | None"]
#: any other diffusers key -> (original key, whether scale and shift change places) or None
OtherName = Callable[[str], "tuple[str, bool] | None"]


#: a family's block patterns: (regex with the block index and the layer inside it, the original
#: block prefix, diffusers layer inside a block -> (original layer, part, ratios))
Blocks = "tuple[tuple[re.Pattern, str, dict[str, tuple[str, int, tuple[int, ...]]]], ...]"


def find_layer(path: str, top: dict[str, str], blocks: Blocks) -> tuple[str, int, tuple[int, ...]] | None:
    """A diffusers linear layer path -> (original dotted name, part, ratios): a top-level layer
    (never fused) or a layer inside a numbered block; None when the layout has no such linear."""
    if path in top:
        return top[path], 0, (1,)
    for pattern, prefix, layers in blocks:
        m = pattern.fullmatch(path)
        if m and m.group(2) in layers:
            name, part, ratios = layers[m.group(2)]
            return f"{prefix}.{m.group(1)}.{name}", part, ratios
    return None


def kohya_form(found: tuple[str, int, tuple[int, ...]] | None) -> tuple[str, int, tuple[int, ...]] | None:
    """The kohya name of an original layer (without the ``lora_unet_`` prefix): ``.`` -> ``_``."""
    return None if found is None else (found[0].replace(".", "_"), found[1], found[2])


def swap_halves(value):
    """diffusers' ``swap_scale_shift`` is its own inverse: the two halves change places."""
    import torch

    first, second = value.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def to_original(state: dict[str, Any], linear: LinearName, other: OtherName) -> dict[str, Any]:
    """A diffusers transformer state dict -> the original keys: fused layers concatenated in their
    parts' order, swapped modulations swapped back. KeyError on a weight with no place there."""
    import torch

    out: dict[str, Any] = {}
    fused: dict[str, dict[int, Any]] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        found = linear(module)
        if found is not None and len(found[2]) > 1:
            fused.setdefault(f"{found[0]}.{param}", {})[found[1]] = value
        elif found is not None:
            out[f"{found[0]}.{param}"] = value
        elif (mapped := other(key)) is not None:
            out[mapped[0]] = swap_halves(value) if mapped[1] else value
        else:
            raise KeyError(key)
    for key, parts in fused.items():
        out[key] = torch.cat([parts[i] for i in sorted(parts)], dim=0)
    return out
