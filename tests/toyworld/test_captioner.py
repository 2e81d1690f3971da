"""The toy captioner: oracle predictions -> pretraining-style captions."""

from __future__ import annotations

import numpy as np

from dreamlock.toyworld.captioner import ToyCaptioner
from dreamlock.toyworld.render import render_dataset
from dreamlock.toyworld.vocab import parse_text


def test_caption_matches_the_render():
    captioner = ToyCaptioner()
    items = list(render_dataset(20, seed=31337))
    captions = captioner.captions([im for im, _, _ in items])
    assert np.mean([c == truth for c, (_, truth, _) in zip(captions, items)]) >= 0.95
    one = captioner.caption(items[0][0])
    assert one == captions[0]
    assert one.startswith("a photo of ")
    assert parse_text(one)["class"] is not None


def test_caption_of_large_non_square_image():
    img, truth, _ = next(iter(render_dataset(1, seed=5, size=64)))
    big = img.resize((256, 256)).crop((0, 0, 256, 256))
    assert ToyCaptioner().caption(big) == truth
