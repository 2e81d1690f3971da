"""What the original-layout mappings of transformer families share (``sd3_layout``, ``flux_layout``):
diffusers keeps q, k, v (and FLUX's single-block MLP input) as separate linears where the original
checkpoints fuse them, and stores some modulations' scale and shift the other way round."""

from __future__ import annotations

from typing import Any, Callable

#: diffusers layer path -> (original dotted layer name, its part in a fused layer, the parts' relative sizes)
LinearName = Callable[[str], "tuple[str, int, tuple[int, ...]] | None"]
#: any other diffusers key -> (original key, whether scale and shift change places) or None
OtherName = Callable[[str], "tuple[str, bool] | None"]


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
