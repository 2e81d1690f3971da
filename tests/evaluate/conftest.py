"""Fake generators that return toy renders, so the metric maths can be checked exactly; a tiny
random SD pipeline saved as a diffusers folder (a "real", non-toy model) for the codec and defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import SubjectSpec, builtin_subject, reference_images
from dreamlock.toyworld.vocab import COLOURS, parse_text


class RenderGenerator:
    """Renders ``subject_spec`` for subject prompts (in the prompted scene) and ``class_spec``
    (a SubjectSpec, or None for plain objects of a random colour) for class prompts. It draws the
    toy world, and says so like a toy model does (``world``), so evaluate picks toy scorer and prompts."""

    world = "toy"

    def __init__(self, subject_spec: SubjectSpec, class_spec: SubjectSpec | None = None, trigger="sks", class_word="star"):
        self.subject_spec, self.class_spec = subject_spec, class_spec
        self.trigger, self.class_word = trigger, class_word
        self.calls: list[tuple[str, list[int]]] = []

    def images(self, prompt: str, seeds: list[int], steps: int, guidance: float) -> list[Image.Image]:
        self.calls.append((prompt, list(seeds)))
        scene = parse_text(prompt)["scene"]
        out = []
        for seed in seeds:
            rng = np.random.default_rng([seed, 99, len(prompt)])
            if self.trigger in prompt.split():
                out.append(render_look(self.subject_spec.look(), scene, rng))
            elif self.class_spec is not None:
                out.append(render_look(self.class_spec.look(), scene, rng))
            else:
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
                out.append(render_look(Look(self.subject_spec.cls, colour), scene, rng))
        return out


@pytest.fixture
def subject() -> SubjectSpec:
    return builtin_subject("stripy-star")


@pytest.fixture
def references(subject):
    return reference_images(subject, n=5, seed=0)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """The tiny random test pipeline (32 px, no dreamlock.json: not the toy world)."""
    from dreamlock.families.build import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture
def make_generator():
    """The :class:`RenderGenerator` class, for tests to build fake generators."""
    return RenderGenerator


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and lose a lot on busy shared cores."""
    from dreamlock.toyworld.oracle import single_thread

    with single_thread():
        yield
