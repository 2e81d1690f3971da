"""Text conditioning as one object, whatever the family makes of a prompt.

SD1/SD2 give one sequence of hidden states; SDXL adds a pooled vector (and size/crop ids, made at
prediction time); flow families add more. The loop and the caches only move, join, split and
select these objects; only the adapter that made one reads inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


#: the extras key of a per-example image condition (InstructPix2Pix: the image to edit; an
#: upscaler: the low-resolution image), set by the training loop, read by the family's ``predict``
IMAGE = "image"


@dataclass
class Conditioning:
    """A batch of encoded prompts: ``embeds`` [B, L, D], optional ``pooled`` [B, P], ``extras``
    of any other per-prompt tensors (first dimension B)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def _map(self, fn) -> "Conditioning":
        return Conditioning(fn(self.embeds), None if self.pooled is None else fn(self.pooled),
                            {k: fn(v) for k, v in self.extras.items()})

    def to(self, *args, **kwargs) -> "Conditioning":
        return self._map(lambda t: t.to(*args, **kwargs))

    def with_extras(self, **tensors: torch.Tensor) -> "Conditioning":
        """The same conditioning with more per-row tensors (an image to edit: ``image=``)."""
        return Conditioning(self.embeds, self.pooled, self.extras | tensors)

    def rows(self) -> list["Conditioning"]:
        """One single-prompt conditioning per row (what a prompt cache stores)."""
        return [self._map(lambda t, i=i: t[i:i + 1]) for i in range(len(self))]

    @staticmethod
    def cat(parts: list["Conditioning"]) -> "Conditioning":
        """Join batches along the batch dimension (instance + class prompts, cached rows)."""
        first = parts[0]
        pooled = None if first.pooled is None else torch.cat([p.pooled for p in parts])
        extras = {k: torch.cat([p.extras[k] for p in parts]) for k in first.extras}
        return Conditioning(torch.cat([p.embeds for p in parts]), pooled, extras)
