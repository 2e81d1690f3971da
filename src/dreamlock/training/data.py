"""Training tensors, prepared once: instance/class latents (cached) and prompt embeddings.

``TrainData.batch(number, generator)`` returns the latents and prompts of one micro-batch; its
choices depend only on the batch number and the generator, so resumed runs see the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dreamlock.families.base import ModelFamily
from dreamlock.families.conditioning import Conditioning
from dreamlock.progress import progress
from dreamlock.training.dataset import batch_indices, load_pixels, to_model_range


@dataclass
class ImageSet:
    """Latents of a set of same-size images (and of their mirror images when flipping is on), with
    prompts and per-image size conditioning ([N, 4], see ``training/buckets.py``)."""

    latents: torch.Tensor
    flipped: torch.Tensor | None
    prompts: list[str]
    meta: torch.Tensor

    def __len__(self) -> int:
        return len(self.prompts)


def encode_set(adapter: ModelFamily, paths, prompts: list[str], size: int | tuple[int, int], flip: bool,
               meta: torch.Tensor, chunk: int = 64, label: str = "encoding images") -> ImageSet:
    """Encode images at ``size`` to latents in chunks, with a progress bar."""
    pixels = load_pixels(paths, size)
    outs, flips = [], []
    with progress(label, len(paths)) as bar:
        for start in range(0, len(paths), chunk):
            part = to_model_range(pixels[start:start + chunk])
            outs.append(adapter.encode_images(part).cpu())
            if flip:
                flips.append(adapter.encode_images(part.flip(-1)).cpu())
            bar.advance(len(part))
    return ImageSet(torch.cat(outs), torch.cat(flips) if flip else None, list(prompts), meta)


class PromptEncoder:
    """Prompt -> the family's Conditioning; cached per prompt when no text encoder trains."""

    def __init__(self, adapter: ModelFamily, cache: bool):
        self.adapter = adapter
        self.cache: dict[str, Conditioning] | None = {} if cache else None
        self.frozen = False  # set once the text encoders are released: no new prompt can be encoded

    def __call__(self, prompts: list[str]) -> Conditioning:
        if self.cache is None:
            return self.adapter.encode_text(prompts)
        missing = sorted({p for p in prompts if p not in self.cache})
        if missing and self.frozen:
            from dreamlock.errors import WorkError

            raise WorkError(f"prompt {missing[0]!r} was not cached before the text encoders were released")
        if missing:
            with torch.no_grad():
                for start in range(0, len(missing), 256):
                    part = missing[start:start + 256]
                    self.cache.update(zip(part, self.adapter.encode_text(part).rows()))
        return Conditioning.cat([self.cache[p] for p in prompts])


@dataclass
class Bucket:
    """The instance images of one training size, and the class images fitted to that size."""

    instance: ImageSet
    klass: ImageSet | None


@dataclass
class TrainData:
    buckets: list[Bucket]
    batch_size: int
    seed: int
    caption_dropout: float

    @property
    def instance(self) -> ImageSet:
        """The first (with square images, the only) bucket's instance images."""
        return self.buckets[0].instance

    @property
    def klass(self) -> ImageSet | None:
        return self.buckets[0].klass

    def _pick(self, images: ImageSet, number: int, gen: torch.Generator, seed: int, dropout: float):
        idx = batch_indices(len(images), self.batch_size, number, seed)
        latents = images.latents[idx]
        if images.flipped is not None:
            flip = torch.rand(len(idx), generator=gen) < 0.5
            latents = torch.where(flip[:, None, None, None], images.flipped[idx], latents)
        prompts = [images.prompts[i] for i in idx]
        if dropout > 0:
            drop = (torch.rand(len(idx), generator=gen) < dropout).tolist()
            prompts = ["" if d else p for p, d in zip(prompts, drop)]
        return latents, prompts, images.meta[idx]

    def _bucket(self, gen: torch.Generator) -> tuple[Bucket, int]:
        """One bucket per batch, drawn in proportion to its images (no draw with one bucket)."""
        if len(self.buckets) == 1:
            return self.buckets[0], self.seed
        weights = torch.tensor([len(b.instance) for b in self.buckets], dtype=torch.float)
        b = int(torch.multinomial(weights, 1, generator=gen))
        return self.buckets[b], self.seed + 7_919 * b

    def batch(self, number: int, gen: torch.Generator) -> tuple[torch.Tensor, list[str], int, torch.Tensor]:
        """(latents, prompts, number of instance examples, size conditioning [B, 4]); class
        examples follow the instance ones."""
        bucket, seed = self._bucket(gen)
        latents, prompts, meta = self._pick(bucket.instance, number, gen, seed, self.caption_dropout)
        n_instance = len(prompts)
        if bucket.klass is not None:
            c_latents, c_prompts, c_meta = self._pick(bucket.klass, number, gen, seed + 1, 0.0)
            latents, prompts, meta = torch.cat([latents, c_latents]), prompts + c_prompts, torch.cat([meta, c_meta])
        return latents, prompts, n_instance, meta
