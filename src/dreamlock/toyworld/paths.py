"""Where the toy world's shipped model lives inside the package."""

from __future__ import annotations

from pathlib import Path

#: The shipped toy base model (a diffusers pipeline folder, fp16 safetensors).
ASSET_DIR = Path(__file__).parent / "assets" / "base"

#: The shipped toy image editor (InstructPix2Pix, trained from the base by benchmarks/edit_route.py).
EDITOR_DIR = Path(__file__).parent / "assets" / "editor"

#: Where benchmarks/sr_route.py --ship puts the toy upscaler (16 px -> 64 px). Not shipped yet: the
#: first one upscales worse than bicubic (benchmarks/RESULTS.md), so no name resolves to it.
UPSCALER_DIR = Path(__file__).parent / "assets" / "upscaler"

#: The names that mean the shipped toy models wherever a model is given (``--base toy``,
#: ``dreamlock edit toy-editor IMAGE ...``); a local folder called ``toy`` is ``./toy``.
TOY_NAME = "toy"
TOY_NAMES = {TOY_NAME: ASSET_DIR, "toy-editor": EDITOR_DIR}


def resolve_model(name: str) -> str:
    """``"toy"`` -> the shipped toy base's folder (``"toy-editor"``: the toy editor's); anything else
    unchanged."""
    return str(TOY_NAMES[str(name)]) if str(name) in TOY_NAMES else name
