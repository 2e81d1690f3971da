"""Subjects: specs, determinism, reference sets, rendering in every scene."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from dreamlock.errors import UserError
from dreamlock.toyworld.render import render
from dreamlock.toyworld.subjects import (
    BUILTIN_SUBJECTS, SubjectSpec, builtin_subject, make_subject, reference_images, render_subject, write_reference_set,
)
from dreamlock.toyworld.vocab import SCENES


def test_builtin_subjects_are_valid_and_distinct():
    assert len(BUILTIN_SUBJECTS) >= 3
    looks = {s.look() for s in BUILTIN_SUBJECTS.values()}
    assert len(looks) == len(BUILTIN_SUBJECTS)
    assert builtin_subject("stripy-star").cls == "star"
    with pytest.raises(UserError):
        builtin_subject("nope")


def test_fresh_names_draw_make_subject_and_bad_seeds_say_how():
    assert builtin_subject("fresh:57").look() == make_subject(57).look()
    assert builtin_subject("fresh:57").name == "fresh:57"
    with pytest.raises(UserError, match="fresh:SEED"):
        builtin_subject("fresh:x")


def test_make_subject_is_deterministic_and_varied():
    assert make_subject(5) == make_subject(5)
    specs = {make_subject(s).look() for s in range(30)}
    assert len(specs) > 20
    assert all(make_subject(s, cls="ring").cls == "ring" for s in range(5))


def test_spec_validation():
    with pytest.raises(ValidationError):
        SubjectSpec(cls="star", colour="red", detail="stripes", detail_colour="red")
    with pytest.raises(ValidationError):
        SubjectSpec(cls="dragon", colour="red", detail="stripes", detail_colour="white")
    with pytest.raises(ValidationError):
        SubjectSpec(cls="star", colour="red", detail="none", detail_colour="white")


def test_detail_is_visible():
    spec = builtin_subject("stripy-star")
    subject = np.asarray(render_subject(spec, "plain", seed=1), dtype=float)
    plain = np.asarray(render("star", "red", "plain", seed=1), dtype=float)
    assert np.abs(subject - plain).mean() > 5  # the white stripes change many pixels


def test_render_subject_in_every_scene():
    spec = builtin_subject("dotty-heart")
    images = [render_subject(spec, s, seed=0) for s in SCENES]
    assert len({im.tobytes() for im in images}) == len(SCENES)
    assert render_subject(spec, "beach", 2).tobytes() == render_subject(spec, "beach", 2).tobytes()
    with pytest.raises(UserError):
        render_subject(spec, "moon")


def test_write_reference_set(tmp_path):
    spec = make_subject(7)
    paths = write_reference_set(spec, tmp_path / "ref", n=5, seed=0, write_spec=True)
    assert len(paths) == 5
    images = [Image.open(p) for p in paths]
    assert all(im.size == (64, 64) and im.format == "PNG" for im in images)
    assert len({im.tobytes() for im in images}) == 5  # varied pose
    assert (tmp_path / "ref" / "subject.json").is_file()
    assert [im.tobytes() for im in reference_images(spec, 5, 0)] == [Image.open(p).convert("RGB").tobytes() for p in paths]


def test_reference_set_in_scenes_with_captions_and_masks(tmp_path):
    """Photos in given scenes keep the plain set's poses (the plain ones are the same images), carry
    a caption naming their scene and a silhouette mask that covers the object's pixels."""
    spec = builtin_subject("dotty-heart")
    plain = write_reference_set(spec, tmp_path / "plain", n=3)
    paths = write_reference_set(spec, tmp_path / "mixed", n=3, scenes=["plain", "forest", "night"], trigger="sks",
                                masks=True)
    assert Image.open(paths[0]).tobytes() == Image.open(plain[0]).tobytes()
    assert Image.open(paths[1]).tobytes() != Image.open(plain[1]).tobytes()
    assert [p.with_suffix(".txt").read_text().strip() for p in paths] == [
        "a photo of sks heart", "a photo of sks heart in the forest", "a photo of sks heart at night"]
    assert not plain[0].with_suffix(".txt").exists()
    mask = np.asarray(Image.open(tmp_path / "mixed" / "masks" / "ref_01.png")) > 127
    forest_only = np.asarray(render_subject(spec, "forest", np.random.default_rng([0, 1, 101])), dtype=int)
    blue = (forest_only[..., 2] > 150) & (forest_only[..., 0] < 100)  # the heart's blue body is inside the mask
    assert 0.05 < mask.mean() < 0.6 and (mask[blue]).mean() > 0.95
    with pytest.raises(UserError, match="reference scenes"):
        write_reference_set(spec, tmp_path / "bad", n=2, scenes=["plain", "moon"])
