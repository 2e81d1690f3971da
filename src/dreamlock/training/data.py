"""Training tensors, prepared once: instance/class latents (cached) and prompt embeddings.

``TrainData.batch(number, generator)`` returns the latents and prompts of one micro-batch; its
choices depend only on the batch number and the generator, so resumed runs see the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rich.progress import Progress

from dreamlock.families.sd import SDAdapter
from dreamlock.training.dataset import batch_indices, load_pixels, to_model_range


@dataclass
class ImageSet:
    """Latents of a set of images (and of their mirror images when flipping is on), with prompts."""

    latents: torch.Tensor
    flipped: torch.Tensor | None
    prompts: list[str]

    def __len__(self) -> int:
        return len(self.prompts)


def encode_set(adapter: SDAdapter, paths, prompts: list[str], resolution: int, flip: bool,
               chunk: int = 64, label: str = "encoding images") -> ImageSet:
    """Encode images to latents in chunks, with a progress bar."""
    pixels = load_pixels(paths, resolution)
    outs, flips = [], []
    with Progress(transient=True) as progress:
        task = progress.add_task(label, total=len(paths))
        for start in range(0, len(paths), chunk):
            part = to_model_range(pixels[start:start + chunk])
            outs.append(adapter.encode_images(part).cpu())
            if flip:
                flips.append(adapter.encode_images(part.flip(-1)).cpu())
            progress.advance(task, len(part))
    return ImageSet(torch.cat(outs), torch.cat(flips) if flip else None, list(prompts))


class PromptEncoder:
    """Prompt -> text-encoder hidden states; cached when the text encoder does not train."""

    def __init__(self, adapter: SDAdapter, cache: bool):
        self.adapter = adapter
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        if self.cache is None:
            return self.adapter.encode_prompt(self.adapter.tokenize(prompts))
        missing = sorted({p for p in prompts if p not in self.cache})
        if missing:
            with torch.no_grad():
                for start in range(0, len(missing), 256):
                    part = missing[start:start + 256]
                    hidden = self.adapter.encode_prompt(self.adapter.tokenize(part))
                    self.cache.update(zip(part, hidden))
        return torch.stack([self.cache[p] for p in prompts])


@dataclass
class TrainData:
    instance: ImageSet
    klass: ImageSet | None
    batch_size: int
    seed: int
    caption_dropout: float

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
        return latents, prompts

    def batch(self, number: int, gen: torch.Generator) -> tuple[torch.Tensor, list[str], int]:
        """(latents, prompts, number of instance examples); class examples follow the instance ones."""
        latents, prompts = self._pick(self.instance, number, gen, self.seed, self.caption_dropout)
        n_instance = len(prompts)
        if self.klass is not None:
            c_latents, c_prompts = self._pick(self.klass, number, gen, self.seed + 1, 0.0)
            latents, prompts = torch.cat([latents, c_latents]), prompts + c_prompts
        return latents, prompts, n_instance
