"""Aspect-ratio buckets at training time (tiny random SD model; plumbing): non-square images keep
their aspect ratio, batches come from one bucket, class images are fitted to every bucket, and the
size conditioning comes from prepare's report."""

from __future__ import annotations

import json
import math

from PIL import Image

from dreamlock.training.api import prepare_trainer
from dreamlock.training.buckets import bucket_step, image_meta, training_sizes
from dreamlock.training.dataset import step_generator


def _write(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.new("RGB", (w, h), (40 * i % 256, 90, 160)).save(path)
        paths.append(path)
    return paths


def test_sizes_follow_the_aspect_ratio(tmp_path):
    paths = _write(tmp_path, [(32, 32), (96, 48), (48, 96), (64, 63)])
    step = bucket_step(4, 32)
    sizes = training_sizes(paths, 32, step, enabled=True)
    assert sizes[0] == (32, 32) and sizes[3] == (32, 32)  # square (to 2 %) stays square
    wide, tall = sizes[1], sizes[2]
    assert wide[0] > wide[1] and tall == (wide[1], wide[0])
    assert all(s % step == 0 for s in wide) and wide[0] * wide[1] <= 32 * 32
    assert training_sizes(paths, 32, step, enabled=False) == [(32, 32)] * 4


def test_meta_from_prepare_report(tmp_path):
    paths = _write(tmp_path, [(32, 32), (32, 32)])
    report = {"entries": [{"file": "a.jpg", "output": str(paths[0]), "original_size": [200, 100],
                           "crop_box": [50, 0, 150, 100], "output_size": [32, 32]}]}
    (tmp_path / "prepare_report.json").write_text(json.dumps(report))
    meta = image_meta(paths, tmp_path)
    assert meta[0].tolist() == [100, 200, 0, 16]  # original h, w; crop top, left in output pixels
    assert meta[1].tolist() == [32, 32, 0, 0]  # not in the report: its own size, uncropped


def test_training_draws_whole_batches_from_one_bucket(make_config, tmp_path):
    data = tmp_path / "mixed"
    _write(data, [(32, 32), (32, 32), (96, 48), (96, 48)])
    trainer = prepare_trainer(make_config(data=str(data), train_batch_size=2, with_prior_preservation=True))
    buckets = trainer.data.buckets
    assert len(buckets) == 2 and buckets[0].instance.latents.shape[-2:] == (16, 16)  # the square bucket first
    for b in buckets:
        assert b.klass.latents.shape[1:] == b.instance.latents.shape[1:]  # class images fitted to it
    shapes = set()
    for number in range(12):
        batch = trainer.data.batch(number, step_generator(0, number))
        assert batch.latents.shape[0] == len(batch.prompts) == batch.meta.shape[0] == 4 and batch.n_instance == 2
        shapes.add(tuple(batch.latents.shape[-2:]))
    assert shapes == {(16, 16), tuple(buckets[1].instance.latents.shape[-2:])}
    losses = [trainer.optimizer_step()["loss"] for _ in range(3)]
    assert all(math.isfinite(x) for x in losses)
