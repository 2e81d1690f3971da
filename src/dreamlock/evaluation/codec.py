"""The codec ceiling: the likeness a model could reach at best, limited by its VAE alone.

Every generation is decoded by the model's VAE at the model's resolution. Sending the reference
images through the same encode/decode round trip and scoring them like generations shows how much
likeness the codec (and the resolution) loses by itself, so a low ``subject_fidelity`` can be told
apart: a ceiling far below the references' own similarity is a codec limit, generations far below
the ceiling are a training limit.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["model_vae", "round_trip"]


def _resolution(pipe: Any) -> int | None:
    """The side the pipeline generates at by default (``unet.sample_size * vae_scale_factor``)."""
    try:
        size = pipe.unet.config.sample_size
        factor = pipe.vae_scale_factor
    except AttributeError:
        return None
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) * int(factor) if isinstance(size, int) and isinstance(factor, int) else None


def model_vae(source: Any) -> tuple[Any, int] | None:
    """``(vae, resolution)`` of an image source that holds a diffusers pipeline (``source.pipe``),
    or None (a stand-in generator without one)."""
    pipe = getattr(source, "pipe", None)
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "encode") or not hasattr(vae, "decode"):
        return None
    resolution = _resolution(pipe)
    return (vae, resolution) if resolution else None


def _square(image: Image.Image, side: int) -> Image.Image:
    """Centre-crop to a square and resize to ``side`` px: the frame a generation has."""
    image = image.convert("RGB")
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    image = image.crop((left, top, left + s, top + s))
    return image if s == side else image.resize((side, side), Image.BICUBIC, reducing_gap=2.0)


@torch.no_grad()
def round_trip(vae: Any, images: Sequence[Image.Image], resolution: int, batch_size: int = 4) -> list[Image.Image]:
    """Encode each image with ``vae`` (the latent distribution's mode) and decode it again, at
    ``resolution`` x ``resolution`` (non-square images are centre-cropped first)."""
    param = next(vae.parameters())
    out: list[Image.Image] = []
    for start in range(0, len(images), batch_size):
        part = [np.asarray(_square(im, resolution), dtype=np.float32) for im in images[start:start + batch_size]]
        x = torch.from_numpy(np.stack(part)).permute(0, 3, 1, 2) / 127.5 - 1.0
        encoded = vae.encode(x.to(param.device, param.dtype))
        latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
        decoded = vae.decode(latents).sample.float().clamp(-1, 1)
        arrays = ((decoded + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out += [Image.fromarray(a) for a in arrays]
    return out
