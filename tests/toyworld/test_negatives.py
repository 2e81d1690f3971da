"""Hard negatives and held-out looks (plumbing of the renderer: no model is loaded)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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


def test_punched_shows_the_scene_where_the_detail_belongs():
    """The 'detail punched out' negative: body colour on the silhouette, the scene in the detail's place."""
    from dreamlock.toyworld.render import SUPERSAMPLE, as_rng, detail_mask, sample_pose, scene_image, shape_mask
    from dreamlock.toyworld.vocab import COLOURS, DETAIL_COLOURS

    look = builtin_subject("dotty-heart").look()  # blue heart, yellow dots
    img = np.asarray(render_negative(look, "punched", "night", seed=4), dtype=np.int16)
    rng = as_rng(4)  # replay the render's draws: scene, then pose, at 64 px
    scene_image("night", 64 * SUPERSAMPLE, rng)
    pose = sample_pose(rng, look.scale)
    side = 64 * SUPERSAMPLE
    inside = (np.asarray(shape_mask(look.cls, pose, side)) > 127) & detail_mask(look, pose, side)
    holes = np.asarray(Image.fromarray(inside).resize((64, 64))) > 0  # the dots' places inside the heart
    dist = lambda rgb: np.linalg.norm(img - np.asarray(rgb), axis=2)
    assert (dist(DETAIL_COLOURS["yellow"]) < 60).mean() < 0.002, "no detail colour left"
    assert (dist(COLOURS["blue"]) < 60).mean() > 0.05, "the body is still painted"
    assert img[holes].mean() < 80, "the dark night shows through the dots"


def test_punched_is_redrawn_where_the_scene_would_pass_for_the_detail():
    """White stripes cut out on snow would look like the subject: drawn on another scene instead."""
    look = builtin_subject("stripy-star").look()  # red star, white stripes
    snow = np.asarray(render_look(Look("star", "red"), "snow", seed=0), dtype=np.int16)
    img = np.asarray(render_negative(look, "punched", "snow", seed=0), dtype=np.int16)
    assert snow.mean() > 180 and img.mean() < 150, (snow.mean(), img.mean())  # snow is pale; the redraw (forest) is not


def test_kind_weights_draw_a_kind_more_often_and_name_unknown_kinds():
    """Plumbing of the oracle's training pool (no training): ``--kind-weight punched=4``."""
    from dreamlock.errors import UserError
    from dreamlock.toyworld.oracle import _render_looks, kind_probabilities

    p = kind_probabilities({"punched": 4})
    assert p[NEGATIVE_KINDS.index("punched")] == pytest.approx(4 / (len(NEGATIVE_KINDS) + 3))
    with pytest.raises(UserError, match="unknown negative kind.*sideways"):
        kind_probabilities({"sideways": 2})

    def punched_share(weights):
        looks = _render_looks((0, 0, 40, 1, 0.0, 3, weights))
        negatives = [key for items in looks for _, labels, key in items if labels is None]
        return sum(key[0] == "negative" and key[1] == "punched" for key in negatives) / len(negatives)

    assert punched_share({"punched": 1000}) > 0.95 > 0.3 > punched_share(None)
