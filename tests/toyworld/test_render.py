"""Renderer: determinism, vocabulary coverage, captions that parse back, dataset folders."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dreamlock.toyworld import vocab
from dreamlock.toyworld.render import (Look, Pose, render, render_dataset, render_look, render_look_and_detail, shape_mask,
                                       write_dataset)
from dreamlock.toyworld.vocab import DETAIL_COLOURS


def test_same_seed_same_bytes_different_seed_differs():
    a = render("star", "red", "beach", seed=3)
    b = render("star", "red", "beach", seed=3)
    c = render("star", "red", "beach", seed=4)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    first = [im.tobytes() for im, _, _ in render_dataset(5, seed=1)]
    again = [im.tobytes() for im, _, _ in render_dataset(5, seed=1)]
    other = [im.tobytes() for im, _, _ in render_dataset(5, seed=2)]
    assert first == again and first != other


def test_size_and_mode():
    img = render("heart", "blue", "night", seed=0)
    assert img.size == (64, 64) and img.mode == "RGB"
    assert render("heart", "blue", "night", seed=0, size=32).size == (32, 32)


def test_vocabulary_meets_spec():
    assert len(vocab.CLASSES) >= 4 and len(vocab.COLOURS) >= 6 and len(vocab.SCENES) >= 5


def test_dataset_covers_vocabulary_and_captions_parse_back():
    seen = {"class": set(), "colour": set(), "scene": set()}
    for _, caption, labels in render_dataset(300, seed=0):
        assert vocab.parse_text(caption) == labels
        for k in seen:
            seen[k].add(labels[k])
    assert seen["class"] == set(vocab.CLASSES)
    assert seen["colour"] == set(vocab.COLOURS)
    assert seen["scene"] == set(vocab.SCENES)


def test_caption_template():
    assert vocab.caption_for("star", "red", "beach") == "a photo of a red star on the beach"
    assert vocab.caption_for("star", "red", "plain") == "a photo of a red star"
    assert vocab.caption_for("ring", "orange", "night") == "a photo of an orange ring at night"
    assert vocab.caption_for("star", None, "plain") == "a photo of a star"
    assert vocab.subject_prompt("sks", "star", "snow") == "a photo of sks star in the snow"


def test_all_words_cover_captions_and_identifiers_are_unused():
    words = set(vocab.all_words())
    assert set(vocab.IDENTIFIERS) <= words
    for cls in vocab.CLASSES:
        for colour in [None, *vocab.COLOURS]:
            for scene in vocab.SCENES:
                caption = vocab.caption_for(cls, colour, scene)
                assert set(caption.split()) <= words
                assert not set(caption.split()) & set(vocab.IDENTIFIERS)
    assert set(vocab.subject_prompt("sks", "star", "beach").split()) <= words


def test_silhouettes_are_distinct():
    pose = Pose(0.5, 0.5, 0.3, 0.0)
    masks = {c: np.asarray(shape_mask(c, pose, 256)) > 127 for c in vocab.CLASSES}
    for a in vocab.CLASSES:
        for b in vocab.CLASSES:
            if a < b:
                iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
                assert iou < 0.8, (a, b, iou)


def test_scenes_look_different():
    def signature(scene: str) -> np.ndarray:  # mean colour of the top and bottom thirds
        img = np.asarray(render_look(Look("star", "red"), scene, seed=0), dtype=float)
        return np.concatenate([img[:20].mean(axis=(0, 1)), img[-20:].mean(axis=(0, 1))])

    means = {s: signature(s) for s in vocab.SCENES}
    for a in vocab.SCENES:
        for b in vocab.SCENES:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 15, (a, b)


def test_write_dataset(tmp_path):
    folder = write_dataset(tmp_path / "data", n=3, seed=0)
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == ["00000.png", "00001.png", "00002.png"]
    for p in pngs:
        caption = p.with_suffix(".txt").read_text().strip()
        assert caption.startswith("a photo of ")
        assert Image.open(p).size == (64, 64)


def test_detail_share_marks_the_detail_pixels():
    """The detail map comes with the very image render_look draws; where it is ~1 the pixel has
    the detail colour, where it is 0 it has not (and a plain object has no detail at all)."""
    look = Look("star", "red", "stripes", "black", 1.2)
    image, share = render_look_and_detail(look, "beach", seed=7)
    assert image.tobytes() == render_look(look, "beach", seed=7).tobytes()
    assert share.shape == (64, 64) and 0.0 <= share.min() and share.max() <= 1.0
    pixels = np.asarray(image, dtype=np.float32)
    black = np.asarray(DETAIL_COLOURS["black"], np.float32)
    inside, outside = pixels[share > 0.99], pixels[share == 0]
    assert len(inside) > 30
    assert np.abs(inside - black).mean() < 25 < np.abs(outside - black).mean()
    _, none = render_look_and_detail(Look("star", "red"), "beach", seed=7)
    assert none.max() == 0.0
