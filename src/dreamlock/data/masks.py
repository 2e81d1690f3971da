"""Masks for masked training: grayscale images in ``masks/`` beside the images they belong to, under
the image's name (``DATA/masks/ref_00.png`` for ``DATA/ref_00.png``; any image suffix), white = the
subject. `dreamlock prepare` crops them with their images; training turns them into loss weights
(``training/data.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamlock.data.imageio import open_fitted, same_name_in
from dreamlock.errors import UserError

MASK_DIR = "masks"


def mask_files(images: list[Path]) -> list[Path | None]:
    """Each image's mask (same name, any image suffix, in ``masks/`` beside it), or None."""
    return same_name_in(images, MASK_DIR)


def check_masks(images: list[Path]) -> list[Path]:
    """Every instance image has a mask of its size; returns the masks."""
    masks = mask_files(images)
    for image, mask in zip(images, masks):
        if mask is None:
            raise UserError(f"{image}: no mask for masked_loss; put one in {image.parent / MASK_DIR} under the same "
                            f"name ({image.stem}.png, white = subject), or set masked_loss = false")
        with Image.open(image) as a, Image.open(mask) as b:
            if a.size != b.size:
                raise UserError(f"{mask}: {b.size[0]}x{b.size[1]}, but its image is {a.size[0]}x{a.size[1]}; "
                                "make the mask the image's size (or prepare both with `dreamlock prepare`)")
            if b.convert("L").getextrema()[1] == 0:
                raise UserError(f"{mask}: all black, so nothing of {image.name} would be learned; paint the "
                                "subject white")
    return masks


def load_masks(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    """Masks as float [N, 1, H, W] in [0, 1] at ``size`` (width, height), fitted as the images are."""
    arrays = [open_fitted(path, size, "L", Image.Resampling.BILINEAR).astype(np.float32) / 255.0 for path in paths]
    return torch.from_numpy(np.stack(arrays))[:, None]
