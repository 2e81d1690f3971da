"""Where the toy world's shipped model lives inside the package."""

from __future__ import annotations

from pathlib import Path

#: The shipped toy base model (a diffusers pipeline folder, fp16 safetensors).
ASSET_DIR = Path(__file__).parent / "assets" / "base"
