"""Instance and class examples: image files, their prompts, and a deterministic batch order.

The order of examples is a function of (seed, epoch) only, so a resumed run sees exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamlock.data.imageio import is_image_name, open_fitted, same_name_in


@dataclass(frozen=True)
class Example:
    image: Path
    prompt: str


def find_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_name(p) and p.is_file())


#: where the images before the edit live in a pairs folder (InstructPix2Pix data): DATA/input/<name>.*
INPUT_DIR = "input"


def input_images(targets: list[Path]) -> list[Path | None]:
    """The image before the edit of each target (same name, any image suffix, in ``input/``; None
    where there is none)."""
    return same_name_in(targets, INPUT_DIR)


def read_caption(image: Path) -> str | None:
    sidecar = image.with_suffix(".txt")
    if sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
        return text or None
    return None


def fill_placeholders(text: str, trigger: str | None, class_word: str | None) -> str:
    """Substitute ``{trigger}`` and ``{class_word}`` and tidy the spaces."""
    text = text.replace("{trigger}", trigger or "").replace("{class_word}", class_word or "")
    return re.sub(r"\s+", " ", text).strip()


def default_instance_prompt(trigger: str | None, class_word: str | None) -> str:
    return fill_placeholders("a photo of {trigger} {class_word}", trigger, class_word)


def instance_examples(
    folder: Path, trigger: str | None, class_word: str | None, instance_prompt: str | None, use_captions: bool
) -> list[Example]:
    """One example per image: its caption (if any and allowed), else the instance prompt."""
    fallback = instance_prompt or default_instance_prompt(trigger, class_word)
    examples = []
    for image in find_images(folder):
        caption = read_caption(image) if use_captions else None
        prompt = caption if caption is not None else fallback
        examples.append(Example(image, fill_placeholders(prompt, trigger, class_word)))
    return examples


def load_pixels(paths: list[Path], size: int | tuple[int, int]) -> torch.Tensor:
    """Images as a uint8 tensor [N, 3, H, W] at ``size`` (a side, or (width, height)): RGB,
    center-cropped and resized when needed."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    arrays = [open_fitted(path, size, "RGB", Image.Resampling.LANCZOS).transpose(2, 0, 1).copy() for path in paths]
    return torch.from_numpy(np.stack(arrays))


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return pixels.float().div(127.5).sub(1.0)


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator whose state depends only on (seed, step, salt)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7_919 + salt) % (2**63))


@lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=step_generator(seed, epoch, salt=1)).tolist()


def batch_indices(n: int, batch_size: int, batch_number: int, seed: int) -> list[int]:
    """Indices of the ``batch_number``-th batch in an endless sequence of shuffled epochs."""
    out = []
    for position in range(batch_number * batch_size, (batch_number + 1) * batch_size):
        epoch, offset = divmod(position, n)
        out.append(_epoch_order(n, seed, epoch)[offset])
    return out
