"""Aspect-ratio buckets at training time: `train` keeps what `prepare --bucket` made.

A non-square instance image trains at the bucket of the training resolution's area nearest to its
aspect ratio (a light centre fit to that exact size), instead of being centre-cropped to a square;
square images train at the resolution as before. Each batch is drawn from one bucket, and the class
images of prior preservation are fitted to every bucket in use, so one batch is one tensor.

For families with size/crop conditioning (SDXL), each image also carries where it came from: its
original size and crop corner, read from ``prepare_report.json`` when `prepare` wrote one (the crop
corner scaled to the output image), else the file's own size and no crop.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from dreamlock.data.crop import make_buckets, nearest_bucket
from dreamlock.data.prepare import REPORT_NAME

Size = tuple[int, int]  # (width, height)


def bucket_step(size_multiple: int, resolution: int) -> int:
    """Bucket sides are multiples of this: what the model needs, and not finer than 1/8 of the side."""
    step = max(size_multiple, resolution // 8)
    return -(-step // size_multiple) * size_multiple


def training_sizes(paths: list[Path], resolution: int, step: int, enabled: bool) -> list[Size]:
    """The (width, height) each image trains at."""
    buckets = make_buckets((resolution, resolution), step=step)
    sizes = []
    for path in paths:
        with Image.open(path) as im:
            w, h = im.size
        square = not enabled or abs(w / h - 1) < 0.02
        sizes.append((resolution, resolution) if square else nearest_bucket(w, h, buckets))
    return sizes


def _report(folder: Path) -> dict[str, dict]:
    path = Path(folder) / REPORT_NAME
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text()).get("entries", [])
    except (json.JSONDecodeError, AttributeError, OSError):
        return {}  # a damaged report only loses the size conditioning; training goes on
    return {Path(e["output"]).name: e for e in entries if isinstance(e, dict) and e.get("output")}


def image_meta(paths: list[Path], folder: Path | None) -> torch.Tensor:
    """[N, 4]: original height, original width, crop top, crop left (SDXL's conditioning)."""
    report = _report(folder) if folder is not None else {}
    rows = []
    for path in paths:
        entry = report.get(path.name)
        if entry and entry.get("original_size") and entry.get("crop_box") and entry.get("output_size"):
            (ow, oh), (left, top, right, bottom), (w, h) = entry["original_size"], entry["crop_box"], entry["output_size"]
            rows.append([oh, ow, top * h / max(bottom - top, 1), left * w / max(right - left, 1)])
        else:
            with Image.open(path) as im:
                rows.append([im.height, im.width, 0, 0])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def square_meta(n: int, size: Size) -> torch.Tensor:
    """Class images: generated at the size they train at, uncropped."""
    return torch.tensor([[size[1], size[0], 0, 0]] * n, dtype=torch.float32).reshape(-1, 4)
