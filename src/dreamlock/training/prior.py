"""Prior preservation: the class images (generated once, cached, reused) and the loss.

The loss follows the DreamBooth paper and its reference scripts: instance and class examples
go through the model as one batch, the prediction is split in two, and
``loss = mse(instance) + prior_loss_weight * mse(class)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from dreamlock.errors import WorkError
from dreamlock.progress import progress
from dreamlock.training.dataset import find_images


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per sample: [B, C, H, W] -> [B]; with ``pixel_weight`` [B, 1, H, W] (masked
    training) the weighted mean, so that a sample's loss keeps the scale of one pixel's error."""
    error = F.mse_loss(pred.float(), target.float(), reduction="none")
    if pixel_weight is None:
        return error.flatten(1).mean(1)
    weight = pixel_weight.to(error).expand_as(error)
    return (error * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)


def prior_preservation_loss(pred: torch.Tensor, target: torch.Tensor, n_instance: int, prior_loss_weight: float,
                            weights: torch.Tensor | None = None,
                            pixel_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a joint batch (instance first, class second); return (total loss, class loss).

    ``weights`` are optional per-sample loss weights (min-SNR), ``pixel_weight`` per-pixel ones
    (masked training; ones on the class rows).
    """
    losses = per_sample_mse(pred, target, pixel_weight)
    if weights is not None:
        losses = losses * weights
    instance, prior = losses[:n_instance].mean(), losses[n_instance:].mean()
    return instance + prior_loss_weight * prior, prior


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "dreamlock" / "class_images"


def cache_key(base: str, class_prompt: str, resolution: int, steps: int, guidance: float) -> str:
    base_id = str(Path(base).resolve()) if Path(base).exists() else base
    raw = json.dumps([base_id, class_prompt, resolution, steps, guidance])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def class_images(pipe_factory, base: str, class_prompt: str, num: int, resolution: int,
                 user_dir: Path | None, cache_root: Path | None, batch_size: int,
                 steps: int, guidance: float, seed: int) -> list[Path]:
    """``num`` class images: the user's first, then cached generations, generating what is missing.

    ``pipe_factory()`` returns a pipeline over the base model; it is called only if generation is needed.
    """
    chosen = find_images(user_dir)[:num] if user_dir else []
    missing = num - len(chosen)
    if missing <= 0:
        return chosen
    folder = (cache_root or default_cache_root()) / cache_key(base, class_prompt, resolution, steps, guidance)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.txt").write_text(class_prompt)
    cached = find_images(folder)
    if len(cached) < missing:
        _generate(pipe_factory(), class_prompt, folder, len(cached), missing, resolution, batch_size, steps, guidance, seed)
        cached = find_images(folder)
    return chosen + cached[:missing]


def _generate(pipe, prompt: str, folder: Path, start: int, end: int, resolution: int,
              batch_size: int, steps: int, guidance: float, seed: int) -> None:
    with progress(f"class images: {prompt!r}", end - start) as bar:
        for first in range(start, end, batch_size):
            count = min(batch_size, end - first)
            generators = [torch.Generator().manual_seed(seed + i) for i in range(first, first + count)]
            images = pipe([prompt] * count, height=resolution, width=resolution, num_inference_steps=steps,
                          guidance_scale=guidance, generator=generators).images
            for i, image in enumerate(images):
                tmp = folder / f".class-{first + i:05d}.png.tmp"
                try:
                    image.save(tmp, format="PNG")
                    tmp.rename(folder / f"class-{first + i:05d}.png")
                except OSError as e:
                    tmp.unlink(missing_ok=True)
                    raise WorkError(f"could not write class images in {folder}: {e.strerror or e}; the "
                                    f"{first + i - start} finished this time are kept; free space there and train "
                                    "again (only the missing ones are generated)") from None
            bar.advance(count)
