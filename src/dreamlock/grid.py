"""Image grids for samples, generations and reports."""

from __future__ import annotations

import math

from PIL import Image


def make_grid(images: list[Image.Image], cols: int | None = None, pad: int = 2, background: str = "white") -> Image.Image:
    """Tile images (all the size of the first) into a grid, row by row."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), background)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid.paste(image.convert("RGB").resize((w, h)), (pad + c * (w + pad), pad + r * (h + pad)))
    return grid
