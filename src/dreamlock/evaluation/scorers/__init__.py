"""Scorers: how a likeness evaluation sees images. Registry ``name -> "module:Class"``, lazy.

A scorer has ``embed(images) -> Tensor[N, D]`` (identity embedding, L2-normalised),
``attributes(images) -> list[dict]`` and ``prompt_match(images, prompt_attrs) -> list[bool]``;
optionally ``impostors(class_word, n, seed) -> list[Image] | None`` (other subjects of the class,
used to calibrate the class-drift threshold), ``layout_features(images) -> list[Tensor[N, C, H, W]]``
(spatial feature maps for the layout-aware diversity metric, described by ``layout_measure``),
``image_features(images)`` (CLIP image embeddings: CLIP-I) and ``text_similarity(images, text)``
(CLIP-T).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, Sequence

import torch
from PIL import Image

from dreamlock.errors import UserError

SCORERS: dict[str, str] = {
    "toy": "dreamlock.evaluation.scorers.toy:ToyScorer",
    "clip-dino": "dreamlock.evaluation.scorers.clip_dino:ClipDinoScorer",
}


class Scorer(Protocol):
    """What :func:`dreamlock.evaluation.evaluate_with` needs from a scorer."""

    name: str

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor: ...

    def attributes(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]: ...

    def prompt_match(self, images: Sequence[Image.Image], prompt_attrs: dict[str, Any]) -> list[bool]: ...


def get_scorer(name: str, model: str | None = None) -> Scorer:
    """Build the scorer registered as ``name`` (``model``: its weights, where it needs any)."""
    if name not in SCORERS:
        raise UserError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")
    module, cls = SCORERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model)
