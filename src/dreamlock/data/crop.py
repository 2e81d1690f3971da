"""Target geometry: sizes, crop boxes (center / face / pad), aspect-ratio buckets, resizing.

Boxes are ``(left, top, right, bottom)`` in pixels of the upright source image, as in Pillow.
Sizes are ``(width, height)``.
"""

from __future__ import annotations

import math
import re

from PIL import Image

Box = tuple[int, int, int, int]
Size = tuple[int, int]

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")
BUCKET_STEP = 64
BUCKET_MAX_RATIO = 2.0


def parse_size(value: object) -> Size:
    """Parse ``512``, ``"512"``, ``"768x512"`` (width x height) or ``(768, 512)``.

    Raises ValueError with a message suitable for a one-line error.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        w = h = value
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        w, h = (int(v) for v in value)
    elif isinstance(value, str) and (m := _SIZE_RE.match(value)):
        w = int(m.group(1))
        h = int(m.group(2) or w)
    else:
        raise ValueError(f"expected a size like 512 or 768x512 (width x height), got {value!r}")
    for side in (w, h):
        if side < 64 or side > 8192 or side % 8:
            raise ValueError(f"size {w}x{h}: each side must be a multiple of 8 between 64 and 8192 (e.g. 512)")
    return w, h


def center_box(width: int, height: int, target: Size) -> Box:
    """The largest box with the target's aspect ratio, centered in a ``width`` x ``height`` image."""
    bw, bh = _fit_aspect(width, height, target)
    left, top = (width - bw) // 2, (height - bh) // 2
    return left, top, left + bw, top + bh


def _fit_aspect(width: int, height: int, target: Size) -> Size:
    """Largest (w, h) with the target aspect ratio that fits in width x height."""
    aspect = target[0] / target[1]
    if width / height > aspect:
        return max(1, min(width, round(height * aspect))), height
    return width, max(1, min(height, round(width / aspect)))


def face_box(width: int, height: int, target: Size, face: Box, margin: float = 0.6) -> Box:
    """A box with the target aspect ratio around ``face``, with ``margin`` x face size on each side.

    The box grows to at least the target size when the image allows (so faces are not upscaled
    more than needed), shrinks to the image when too large, and is shifted to stay inside it.
    """
    aspect = target[0] / target[1]
    fx0, fy0, fx1, fy1 = face
    need_w, need_h = (fx1 - fx0) * (1 + 2 * margin), (fy1 - fy0) * (1 + 2 * margin)
    bw = max(need_w, need_h * aspect, float(target[0]))
    max_w, max_h = _fit_aspect(width, height, target)
    bw = min(bw, float(max_w))
    bh = min(bw / aspect, float(max_h))
    bw, bh = min(max_w, round(bw)), min(max_h, round(bh))
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    left = int(min(max(round(cx - bw / 2), 0), width - bw))
    top = int(min(max(round(cy - bh / 2), 0), height - bh))
    return left, top, left + bw, top + bh


def box_contains(outer: Box, inner: Box) -> bool:
    """True when ``inner`` lies entirely inside ``outer``."""
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def crop_resize(image: Image.Image, box: Box, target: Size) -> Image.Image:
    """Crop ``box`` and resize it to ``target`` with LANCZOS in one step."""
    return image.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def pad_resize(image: Image.Image, target: Size, background: tuple[int, int, int]) -> Image.Image:
    """Letterbox: scale the whole image to fit inside ``target`` and pad with ``background``."""
    scale = min(target[0] / image.width, target[1] / image.height)
    w = max(1, min(target[0], round(image.width * scale)))
    h = max(1, min(target[1], round(image.height * scale)))
    canvas = Image.new("RGB", target, background)
    fitted = image.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas.paste(fitted, ((target[0] - w) // 2, (target[1] - h) // 2))
    return canvas


def make_buckets(size: Size, step: int = BUCKET_STEP, max_ratio: float = BUCKET_MAX_RATIO) -> list[Size]:
    """Aspect-ratio buckets for a target of ``size``'s area, sorted from tall to wide.

    For each width ``w`` (a multiple of ``step`` up to the square side) the bucket height is the
    largest multiple of ``step`` with ``w * h <= area``; buckets with an aspect ratio beyond
    ``max_ratio`` are dropped and each portrait bucket is mirrored into a landscape one.
    """
    area = size[0] * size[1]
    side = math.isqrt(area)
    buckets: set[Size] = set()
    for w in range(step, side + 1, step):
        h = (area // w) // step * step
        if h >= w and h / w <= max_ratio:
            buckets.update({(w, h), (h, w)})
    if not buckets:
        square = max(step, side // step * step)
        buckets.add((square, square))
    return sorted(buckets, key=lambda b: b[0] / b[1])


def nearest_bucket(width: int, height: int, buckets: list[Size]) -> Size:
    """The bucket whose aspect ratio is closest (in log scale) to ``width`` / ``height``."""
    ratio = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))
