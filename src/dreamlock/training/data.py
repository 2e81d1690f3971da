"""Training tensors, prepared once: instance/class latents (cached) and prompt embeddings.

``TrainData.batch(number, generator)`` returns one micro-batch (a ``Batch``); its
choices depend only on the batch number and the generator, so resumed runs see the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dreamlock.data.masks import load_masks
from dreamlock.families.base import ModelFamily
from dreamlock.families.conditioning import Conditioning
from dreamlock.progress import progress
from dreamlock.training.dataset import batch_indices
from dreamlock.training.latent_cache import LatentCache, encode_cached


@dataclass
class ImageSet:
    """Latents of a set of same-size images (and of their mirror images when flipping is on), with
    prompts, per-image size conditioning ([N, 4], see ``training/buckets.py``), for families with a
    ``condition_kind`` each image's condition (InstructPix2Pix: the image before the edit) and, with
    masked training, each image's loss weights ([N, 1, h, w], see :func:`loss_weights`)."""

    latents: torch.Tensor
    flipped: torch.Tensor | None
    prompts: list[str]
    meta: torch.Tensor
    condition: tuple[torch.Tensor, torch.Tensor | None] | None = None  # (as is, mirrored)
    loss_weight: tuple[torch.Tensor, torch.Tensor | None] | None = None  # (as is, mirrored)

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class Batch:
    """One micro-batch: instance examples first, then class examples."""

    latents: torch.Tensor
    prompts: list[str]
    n_instance: int
    meta: torch.Tensor
    condition: torch.Tensor | None = None
    loss_weight: torch.Tensor | None = None  # [B, 1, h, w]: masked training (class examples: ones)


def loss_weights(masks: torch.Tensor, latent_hw: tuple[int, int], background: float) -> torch.Tensor:
    """Masked training: pixel masks [N, 1, H, W] (white = subject, ``data/masks.py``) -> loss weights
    [N, 1, h, w] at the latent size: the mask's share of each latent cell, and ``background`` (0: the
    background is not learned) where it is 0."""
    share = F.interpolate(masks, size=tuple(latent_hw), mode="area")
    return background + (1.0 - background) * share


def encode_set(adapter: ModelFamily, paths, prompts: list[str], size: int | tuple[int, int], flip: bool,
               meta: torch.Tensor, label: str = "encoding images", condition_paths=None,
               cache: LatentCache | None = None, mask_paths=None, mask_background: float = 0.0) -> ImageSet:
    """Encode images at ``size`` to latents in chunks, with a progress bar (and their condition
    images, same size, same flips, through ``adapter.encode_condition``), reading and filling the
    run's latent ``cache`` when given; ``mask_paths``: each image's mask, made into loss weights."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    with progress(label, len(paths)) as bar:
        latents, flipped = encode_cached(adapter.encode_images, list(paths), size, flip, "latents", cache, bar)
    condition = None
    if condition_paths is not None:
        condition = encode_cached(adapter.encode_condition, list(condition_paths), size, flip, "condition", cache)
    weight = None
    if mask_paths is not None:
        w = loss_weights(load_masks(list(mask_paths), size), latents.shape[-2:], mask_background)
        weight = (w, w.flip(-1) if flipped is not None else None)
    return ImageSet(latents, flipped, list(prompts), meta, condition, weight)


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
    condition_dropout: float = 0.0

    @property
    def instance(self) -> ImageSet:
        """The first (with square images, the only) bucket's instance images."""
        return self.buckets[0].instance

    @property
    def klass(self) -> ImageSet | None:
        return self.buckets[0].klass

    def _pick(self, images: ImageSet, number: int, gen: torch.Generator, seed: int, dropout: float) -> Batch:
        idx = batch_indices(len(images), self.batch_size, number, seed)
        latents = images.latents[idx]
        condition = images.condition[0][idx] if images.condition is not None else None
        weight = images.loss_weight[0][idx] if images.loss_weight is not None else None
        if images.flipped is not None:
            flip = torch.rand(len(idx), generator=gen) < 0.5
            latents = torch.where(flip[:, None, None, None], images.flipped[idx], latents)
            if condition is not None:
                condition = torch.where(flip[:, None, None, None], images.condition[1][idx], condition)
            if weight is not None:
                weight = torch.where(flip[:, None, None, None], images.loss_weight[1][idx], weight)
        prompts = [images.prompts[i] for i in idx]
        if dropout > 0:
            drop = (torch.rand(len(idx), generator=gen) < dropout).tolist()
            prompts = ["" if d else p for p, d in zip(prompts, drop)]
        if condition is not None and self.condition_dropout > 0:  # learns the image-unconditional branch
            keep = torch.rand(len(idx), generator=gen) >= self.condition_dropout
            condition = condition * keep[:, None, None, None]
        return Batch(latents, prompts, len(prompts), images.meta[idx], condition, weight)

    def _bucket(self, gen: torch.Generator) -> tuple[Bucket, int]:
        """One bucket per batch, drawn in proportion to its images (no draw with one bucket)."""
        if len(self.buckets) == 1:
            return self.buckets[0], self.seed
        weights = torch.tensor([len(b.instance) for b in self.buckets], dtype=torch.float)
        b = int(torch.multinomial(weights, 1, generator=gen))
        return self.buckets[b], self.seed + 7_919 * b

    def batch(self, number: int, gen: torch.Generator) -> Batch:
        """The micro-batch ``number``: instance examples, then class examples (prior preservation)."""
        bucket, seed = self._bucket(gen)
        batch = self._pick(bucket.instance, number, gen, seed, self.caption_dropout)
        if bucket.klass is None:
            return batch
        klass = self._pick(bucket.klass, number, gen, seed + 1, 0.0)
        weight = batch.loss_weight
        if weight is not None:
            weight = torch.cat([weight, torch.ones((len(klass.prompts),) + weight.shape[1:])])
        return Batch(torch.cat([batch.latents, klass.latents]), batch.prompts + klass.prompts, batch.n_instance,
                     torch.cat([batch.meta, klass.meta]), loss_weight=weight)
