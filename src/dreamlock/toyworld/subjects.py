"""Subjects: unique toy objects that pretraining never shows.

A subject is a plain object (class, body colour, size) plus one distinctive detail: a pattern
(stripes, dots, checker), a two-tone marking or an emblem, in a second colour. Pretraining only
renders plain objects, so every subject is new to the base model; :func:`make_subject` draws
fresh ones so evaluation can use subjects nobody tuned for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dreamlock.data.masks import MASK_DIR
from dreamlock.errors import UserError
from dreamlock.toyworld.render import Look, Seed, as_rng, render_look, render_look_and_mask
from dreamlock.toyworld.vocab import CLASSES, COLOURS, DETAIL_COLOURS, DETAILS, SCENES, subject_prompt


class SubjectSpec(BaseModel):
    """One subject: ``cls`` (class word), ``colour`` (body), ``detail`` + ``detail_colour``, ``size``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cls: str
    colour: str
    detail: str = Field(description="stripes, dots, checker, twotone or emblem")
    detail_colour: str
    size: float = Field(1.0, ge=0.7, le=1.3, description="scale of the object relative to plain renders")
    name: str | None = None

    @field_validator("cls")
    @classmethod
    def _known_class(cls, v: str) -> str:
        if v not in CLASSES:
            raise ValueError(f"unknown class {v!r}; choose one of {', '.join(CLASSES)}")
        return v

    @field_validator("colour")
    @classmethod
    def _known_colour(cls, v: str) -> str:
        if v not in COLOURS:
            raise ValueError(f"unknown colour {v!r}; choose one of {', '.join(COLOURS)}")
        return v

    @field_validator("detail")
    @classmethod
    def _known_detail(cls, v: str) -> str:
        if v not in DETAILS[1:]:
            raise ValueError(f"unknown detail {v!r}; choose one of {', '.join(DETAILS[1:])}")
        return v

    @model_validator(mode="after")
    def _contrasting_detail(self) -> "SubjectSpec":
        if self.detail_colour not in DETAIL_COLOURS:
            raise ValueError(f"unknown detail_colour {self.detail_colour!r}; choose one of {', '.join(DETAIL_COLOURS)}")
        if self.detail_colour == self.colour:
            raise ValueError("detail_colour must differ from colour, or the detail is invisible")
        return self

    @property
    def class_word(self) -> str:
        """The class noun used in prompts (``star``...)."""
        return self.cls

    def look(self) -> Look:
        """The renderer's view of this subject."""
        return Look(self.cls, self.colour, self.detail, self.detail_colour, self.size)

    def describe(self) -> str:
        """Plain words, e.g. ``red star with white stripes``."""
        detail = {"twotone": "two-tone marking", "emblem": "round emblem"}.get(self.detail, self.detail)
        return f"{self.colour} {self.cls} with {self.detail_colour} {detail}"


BUILTIN_SUBJECTS: dict[str, SubjectSpec] = {
    s.name: s
    for s in [
        SubjectSpec(name="stripy-star", cls="star", colour="red", detail="stripes", detail_colour="white"),
        SubjectSpec(name="dotty-heart", cls="heart", colour="blue", detail="dots", detail_colour="yellow"),
        SubjectSpec(name="checker-ring", cls="ring", colour="green", detail="checker", detail_colour="black", size=1.1),
        SubjectSpec(name="twotone-cross", cls="cross", colour="orange", detail="twotone", detail_colour="purple"),
        SubjectSpec(name="emblem-triangle", cls="triangle", colour="purple", detail="emblem", detail_colour="white"),
    ]
}


#: The demo's subject: a blue heart with yellow dots, a detail that contrasts with every scene and
#: that the toy codec round-trips (the striped star's white stripes vanish into pale scenes even
#: after a bare VAE round trip; benchmarks/RESULTS.md).
DEMO_SUBJECT = "dotty-heart"


def builtin_subject(name: str) -> SubjectSpec:
    """A named built-in subject, e.g. ``builtin_subject("stripy-star")``, or ``fresh:SEED`` for the
    subject :func:`make_subject` draws from that seed (``fresh:57``: a blue star with a green emblem)."""
    if name.startswith("fresh:"):
        seed = name.removeprefix("fresh:")
        if not seed.isdigit():
            raise UserError(f"subject {name!r}: write fresh:SEED with a whole number, e.g. fresh:57")
        return make_subject(int(seed)).model_copy(update={"name": name})
    if name not in BUILTIN_SUBJECTS:
        raise UserError(f"unknown subject {name!r}; built-in subjects: {', '.join(BUILTIN_SUBJECTS)}, "
                        "or fresh:SEED for a random one")
    return BUILTIN_SUBJECTS[name]


def make_subject(seed: Seed, cls: str | None = None) -> SubjectSpec:
    """A random subject (optionally of a given class), deterministic by seed.

    White two-tone markings are not drawn: on light scenes they read as a missing half.
    """
    rng = as_rng(seed)
    cls = cls or CLASSES[int(rng.integers(len(CLASSES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    detail = DETAILS[1 + int(rng.integers(len(DETAILS) - 1))]
    options = [c for c in DETAIL_COLOURS if c != colour and not (detail == "twotone" and c == "white")]
    detail_colour = options[int(rng.integers(len(options)))]
    size = round(float(rng.uniform(0.85, 1.15)), 2)
    return SubjectSpec(cls=cls, colour=colour, detail=detail, detail_colour=detail_colour, size=size)


def render_subject(spec: SubjectSpec, scene: str = "plain", seed: Seed = 0, size: int = 64) -> Image.Image:
    """Render the subject on ``scene`` with a random pose (deterministic by seed)."""
    if scene not in SCENES:
        raise UserError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
    return render_look(spec.look(), scene, seed, size)


def reference_images(spec: SubjectSpec, n: int = 5, seed: int = 0, size: int = 64) -> list[Image.Image]:
    """``n`` renders of the subject on the plain scene, each with its own pose."""
    return [image for image, _ in reference_images_and_masks(spec, n, seed, size)]


def reference_images_and_masks(spec: SubjectSpec, n: int = 5, seed: int = 0, size: int = 64,
                               scenes: Sequence[str] | None = None) -> list[tuple[Image.Image, Image.Image]]:
    """:func:`reference_images` (the same renders) with each one's silhouette mask; ``scenes``:
    the scene of each render (default: all plain; the poses do not depend on it)."""
    return [render_look_and_mask(spec.look(), scene, np.random.default_rng([seed, i, 101]), size)
            for i, scene in enumerate(reference_scenes(n, scenes))]


def reference_scenes(n: int, scenes: Sequence[str] | None = None) -> list[str]:
    """The scene of each of ``n`` reference renders: ``scenes`` checked, or all plain."""
    if n < 1:
        raise UserError(f"reference set size n={n}: give at least 1 (a reference set is usually 3-6)")
    scenes = list(scenes) if scenes is not None else ["plain"] * n
    if len(scenes) != n or any(s not in SCENES for s in scenes):
        raise UserError(f"reference scenes {scenes}: give {n} names out of {', '.join(SCENES)}")
    return scenes


def write_reference_set(
    spec: SubjectSpec, folder: str | Path, n: int = 5, seed: int = 0, size: int = 64, write_spec: bool = False,
    masks: bool = False, scenes: Sequence[str] | None = None, trigger: str | None = None,
) -> list[Path]:
    """Write ``n`` renders as ``ref_NN.png`` (what ``dreamlock prepare`` accepts), on the plain scene
    or on ``scenes`` (one per render).

    With ``write_spec`` the spec is saved next to them as ``subject.json``; with ``masks`` each
    render's silhouette as ``masks/ref_NN.png`` (for masked training); with ``trigger`` each gets
    a caption naming its scene (``ref_NN.txt``: "a photo of sks heart in the forest").
    """
    scenes = reference_scenes(n, scenes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if masks:
        (folder / MASK_DIR).mkdir(exist_ok=True)
    paths = []
    for i, (img, mask) in enumerate(reference_images_and_masks(spec, n, seed, size, scenes)):
        path = folder / f"ref_{i:02d}.png"
        img.save(path)
        if masks:
            mask.save(folder / MASK_DIR / path.name)
        if trigger:
            path.with_suffix(".txt").write_text(subject_prompt(trigger, spec.class_word, scenes[i]) + "\n")
        paths.append(path)
    if write_spec:
        (folder / "subject.json").write_text(json.dumps(spec.model_dump(), indent=2) + "\n")
    return paths
