"""Model families: one adapter module each, found through this registry.

An adapter knows how to load a family's pipeline, encode prompts, compute the training target and
save weights. Adding a family (SDXL, SD3, FLUX...) is one module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dreamlock.errors import UserError

if TYPE_CHECKING:
    from dreamlock.families.sd import SDAdapter

FAMILIES: dict[str, str] = {
    "sd": "dreamlock.families.sd:SDAdapter",  # Stable Diffusion 1.x / 2.x architecture
}


def get_family(name: str) -> "SDAdapter":
    """Return the adapter class for a family name."""
    if name not in FAMILIES:
        raise UserError(f"unknown model family '{name}'; choose one of: {', '.join(FAMILIES)}")
    module, attr = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), attr)
