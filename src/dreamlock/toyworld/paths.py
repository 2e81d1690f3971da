"""Where the toy world's shipped model lives inside the package."""

from __future__ import annotations

from pathlib import Path

#: The shipped toy base model (a diffusers pipeline folder, fp16 safetensors).
ASSET_DIR = Path(__file__).parent / "assets" / "base"

#: The name that means the shipped toy base wherever a model is given (``--base toy``); a local
#: folder called ``toy`` is ``./toy``.
TOY_NAME = "toy"


def resolve_model(name: str) -> str:
    """``"toy"`` -> the shipped toy base's folder; anything else unchanged."""
    return str(ASSET_DIR) if str(name) == TOY_NAME else name
