"""Hard negatives and held-out looks (plumbing of the renderer: no model is loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from dreamlock.toyworld.negatives import NEGATIVE_KINDS, SHAPE_KINDS, held_out, look_key, render_negative, render_negative_with_look
from dreamlock.toyworld.render import Look, render_look
from dreamlock.toyworld.subjects import BUILTIN_SUBJECTS, builtin_subject, make_subject


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_each_kind_renders_deterministically_and_differs_from_the_subject(kind):
    look = builtin_subject("dotty-heart").look()
    a = np.asarray(render_negative(look, kind, "beach", seed=3), dtype=np.int16)
    b = np.asarray(render_negative(look, kind, "beach", seed=3), dtype=np.int16)
    subject = np.asarray(render_look(look, "beach", seed=3), dtype=np.int16)
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)
    assert np.abs(a - subject).mean() > 2.0, "a negative must not be the subject itself"


def test_negative_looks_are_named_for_valid_looks_only():
    look = builtin_subject("checker-ring").look()
    rng = np.random.default_rng(0)
    for kind in NEGATIVE_KINDS:
        _, painted = render_negative_with_look(look, kind, "plain", rng)
        if kind in SHAPE_KINDS:
            assert painted is None
        else:
            assert painted is not None and look_key(painted) != look_key(look), kind
    _, plain = render_negative_with_look(look, "no_detail", "plain", 1)
    assert plain.detail == "none" and (plain.cls, plain.colour) == (look.cls, look.colour)


def test_band_has_no_outline_it_crosses_the_frame():
    """The band negative spans the image width (the 'stripe bands' failure), unlike the subject."""
    look = builtin_subject("stripy-star").look()
    img = np.asarray(render_negative(look, "band", "plain", seed=0), dtype=np.int16)
    background = np.asarray(render_look(Look("star", "red"), "plain", seed=0), dtype=np.int16)[0, 0]
    far_from_background = np.abs(img - background).sum(axis=2) > 120
    cols_with_paint = far_from_background.any(axis=0).mean()
    assert cols_with_paint > 0.95


def test_plain_looks_have_no_negatives():
    with pytest.raises(ValueError, match="subject look"):
        render_negative(Look("star", "red"), "band")
    with pytest.raises(ValueError, match="unknown negative kind"):
        render_negative(builtin_subject("stripy-star").look(), "sideways")


def test_held_out_looks_include_the_builtin_subjects_and_about_15_percent():
    assert all(held_out(s.look()) for s in BUILTIN_SUBJECTS.values())
    assert not held_out(Look("star", "red"))
    rng = np.random.default_rng(0)
    share = np.mean([held_out(make_subject(rng).look()) for _ in range(3000)])
    assert 0.10 < share < 0.25
