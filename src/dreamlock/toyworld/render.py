"""The toy world's renderer: one object on one scene, deterministic by seed.

Pure NumPy + Pillow. Each image is drawn at 4x its size (scene, then the object's mask and its
colour layer) and downsampled with LANCZOS, then given a light global brightness change and
pixel noise. Pose (position, size, rotation) is jittered from the same random generator, so one
seed always gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from dreamlock.toyworld.vocab import CLASSES, COLOURS, DETAIL_COLOURS, DETAILS, SCENES, caption_for

SUPERSAMPLE = 4

Seed = int | np.random.Generator


@dataclass(frozen=True)
class Look:
    """What an object looks like, independent of pose and scene.

    ``detail`` is ``none`` for the plain objects pretraining shows; subjects add a pattern
    (stripes, dots, checker), a two-tone marking or an emblem in ``detail_colour``.
    ``scale`` multiplies the object's size.
    """

    cls: str
    colour: str
    detail: str = "none"
    detail_colour: str | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"unknown class {self.cls!r}; choose one of {', '.join(CLASSES)}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; choose one of {', '.join(COLOURS)}")
        if self.detail not in DETAILS:
            raise ValueError(f"unknown detail {self.detail!r}; choose one of {', '.join(DETAILS)}")
        if self.detail != "none" and self.detail_colour not in DETAIL_COLOURS:
            raise ValueError(f"detail {self.detail!r} needs a detail_colour from {', '.join(DETAIL_COLOURS)}")


@dataclass(frozen=True)
class Pose:
    """Where the object sits: centre and radius as fractions of the image side, angle in degrees."""

    cx: float
    cy: float
    radius: float
    angle: float


def as_rng(seed: Seed) -> np.random.Generator:
    """A NumPy Generator from an int seed (or the Generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def sample_pose(rng: np.random.Generator, scale: float = 1.0) -> Pose:
    """Light jitter: position +-8% of the side, size +-12%, rotation +-25 degrees."""
    cx, cy = 0.5 + rng.uniform(-0.08, 0.08, size=2)
    radius = 0.29 * scale * rng.uniform(0.88, 1.12)
    return Pose(float(cx), float(cy), float(radius), float(rng.uniform(-25.0, 25.0)))


# ---------------------------------------------------------------------------- shapes (unit radius)


def _star() -> np.ndarray:
    k = np.arange(10)
    r = np.where(k % 2 == 0, 1.0, 0.45)
    a = -math.pi / 2 + k * math.pi / 5
    return np.stack([r * np.cos(a), r * np.sin(a) + 0.05], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 16.5


def _triangle() -> np.ndarray:
    a = -math.pi / 2 + np.arange(3) * 2 * math.pi / 3
    return np.stack([np.cos(a), np.sin(a) + 0.2], axis=1) * 1.08


def _cross() -> np.ndarray:
    w, L = 0.34, 0.95
    pts = [(-w, -L), (w, -L), (w, -w), (L, -w), (L, w), (w, w), (w, L), (-w, L), (-w, w), (-L, w), (-L, -w), (-w, -w)]
    return np.array(pts, dtype=float)


_POLYGONS = {"star": _star(), "heart": _heart(), "triangle": _triangle(), "cross": _cross()}
_RING_INNER = 0.52
#: Where an emblem sits (object frame) and its radius, per class: always inside the body.
_EMBLEM = {"star": (0.0, 0.05, 0.32), "heart": (0.0, -0.05, 0.34), "triangle": (0.0, 0.2, 0.3),
           "cross": (0.0, 0.0, 0.3), "ring": (0.0, -0.76, 0.2)}


def _rotation(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def shape_mask(cls: str, pose: Pose, side: int) -> Image.Image:
    """The object's silhouette as an L mask at ``side`` pixels."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = pose.cx * side, pose.cy * side, pose.radius * side
    if cls == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = r * _RING_INNER
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    else:
        pts = _POLYGONS[cls] @ _rotation(pose.angle).T * r + (cx, cy)
        draw.polygon([tuple(p) for p in pts], fill=255)
    return mask


# ---------------------------------------------------------------------------- details (patterns)


def _local_coords(pose: Pose, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in the object's frame (unit = object radius), shape [side, side] each."""
    grid = (np.arange(side, dtype=np.float32) + 0.5) / side
    x, y = grid[None, :] - pose.cx, grid[:, None] - pose.cy
    a = math.radians(pose.angle)
    u = (x * math.cos(a) + y * math.sin(a)) / pose.radius
    v = (-x * math.sin(a) + y * math.cos(a)) / pose.radius
    return u, v


def detail_mask(look: Look, pose: Pose, side: int) -> np.ndarray:
    """Boolean [side, side]: where the detail colour replaces the body colour."""
    u, v = _local_coords(pose, side)
    if look.detail == "stripes":
        return np.mod(v * 1.6 + 0.25, 1.0) < 0.5
    if look.detail == "dots":
        du, dv = np.mod(u + 0.3, 0.6) - 0.3, np.mod(v + 0.3, 0.6) - 0.3
        return du * du + dv * dv < 0.19**2
    if look.detail == "checker":
        return (np.floor(u / 0.42) + np.floor(v / 0.42)) % 2 == 0
    if look.detail == "twotone":
        return v > 0.1
    if look.detail == "emblem":
        eu, ev, er = _EMBLEM[look.cls]
        return (u - eu) ** 2 + (v - ev) ** 2 < er**2
    return np.zeros((side, side), dtype=bool)


def colour_layer(look: Look, pose: Pose, side: int) -> Image.Image:
    """The object's colours (body + detail) at ``side`` pixels, to be pasted through its mask."""
    body = COLOURS[look.colour]
    if look.detail == "none":
        return Image.new("RGB", (side, side), body)
    layer = np.empty((side, side, 3), dtype=np.uint8)
    layer[:] = body
    layer[detail_mask(look, pose, side)] = DETAIL_COLOURS[look.detail_colour]
    return Image.fromarray(layer)


# ---------------------------------------------------------------------------- scenes


@lru_cache(maxsize=64)
def _gradient(side: int, top: tuple[int, ...], bottom: tuple[int, ...], start: float, stop: float) -> np.ndarray:
    """A vertical colour ramp over rows [start, stop) of a side x side canvas (cached)."""
    rows = max(1, round(stop * side) - round(start * side))
    t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    ramp = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.repeat(ramp[:, None, :], side, axis=1).astype(np.uint8)


def _bands(side: int, bands: list[tuple[float, float, tuple[int, ...], tuple[int, ...]]]) -> Image.Image:
    """Stack vertical gradient bands ``(start, stop, top_rgb, bottom_rgb)`` into one image."""
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    for start, stop, top, bottom in bands:
        a, b = round(start * side), round(stop * side)
        if b > a:
            canvas[a:b] = _gradient(side, tuple(top), tuple(bottom), start, stop)[: b - a]
    return Image.fromarray(canvas)


def scene_image(scene: str, side: int, rng: np.random.Generator) -> Image.Image:
    """The background for ``scene`` at ``side`` pixels, with light random variation."""
    q = lambda x: round(float(x), 2)  # quantised so the gradient cache stays small
    if scene == "plain":
        return _bands(side, [(0, 1, (232, 232, 236), (192, 192, 200))])
    if scene == "beach":
        h = q(rng.uniform(0.5, 0.6))
        return _bands(side, [(0, h - 0.08, (110, 180, 240), (175, 220, 248)),
                             (h - 0.08, h, (30, 110, 185), (45, 135, 200)),
                             (h, 1, (232, 208, 155), (212, 182, 125))])
    if scene == "snow":
        h = q(rng.uniform(0.45, 0.55))
        img = _bands(side, [(0, h, (170, 182, 200), (210, 218, 230)), (h, 1, (246, 247, 252), (226, 230, 240))])
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, w = rng.uniform(0, 1) * side, rng.uniform(0.25, 0.45) * side
            y = (h + rng.uniform(0.08, 0.4)) * side
            draw.ellipse([x - w, y - w * 0.18, x + w, y + w * 0.18], fill=(205, 212, 228))
        for _ in range(int(rng.integers(8, 16))):
            x, y, r = rng.uniform(0, 1) * side, rng.uniform(0, h) * side, 0.012 * side
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
        return img
    if scene == "forest":
        img = _bands(side, [(0, 0.85, (22, 64, 32), (36, 92, 44)), (0.85, 1, (52, 70, 34), (40, 55, 26))])
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(4, 7))):
            x, w = rng.uniform(0, 1) * side, rng.uniform(0.04, 0.08) * side
            draw.rectangle([x - w / 2, 0, x + w / 2, 0.9 * side], fill=(88, 58, 32))
        for _ in range(int(rng.integers(5, 9))):
            x, y, r = rng.uniform(0, 1) * side, rng.uniform(-0.05, 0.2) * side, rng.uniform(0.1, 0.18) * side
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(16, 50, 22))
        return img
    if scene == "night":
        img = _bands(side, [(0, 1, (6, 10, 38), (26, 36, 88))])
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(18, 32))):
            x, y = rng.uniform(0, 1) * side, rng.uniform(0, 1) * side
            r = rng.uniform(0.008, 0.016) * side
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 250, 210))
        return img
    raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")


# ---------------------------------------------------------------------------- public API


def render_look(look: Look, scene: str = "plain", seed: Seed = 0, size: int = 64, pose: Pose | None = None) -> Image.Image:
    """Render ``look`` on ``scene`` as a ``size`` x ``size`` RGB image, deterministic by seed."""
    return _draw(look, scene, seed, size, pose)[0]


def render_look_and_detail(look: Look, scene: str = "plain", seed: Seed = 0, size: int = 64,
                           pose: Pose | None = None) -> tuple[Image.Image, np.ndarray]:
    """:func:`render_look` (same image for the same seed) and the share of each output pixel that
    shows the detail colour (float32 [size, size] in [0, 1]; zeros for plain objects)."""
    image, pose, shape = _draw(look, scene, seed, size, pose)
    detail = detail_mask(look, pose, size * SUPERSAMPLE) * (np.asarray(shape, dtype=np.float32) / 255.0)
    return image, detail.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)


def render_look_and_mask(look: Look, scene: str = "plain", seed: Seed = 0, size: int = 64,
                         pose: Pose | None = None) -> tuple[Image.Image, Image.Image]:
    """:func:`render_look` (same image for the same seed) and the object's silhouette at ``size``
    (L: 255 inside, partial at the edge), e.g. a mask for masked training."""
    image, _, shape = _draw(look, scene, seed, size, pose)
    return image, shape.resize((size, size), Image.Resampling.BOX)


def _draw(look: Look, scene: str, seed: Seed, size: int, pose: Pose | None) -> tuple[Image.Image, Pose, Image.Image]:
    """The rendered image, the pose it was drawn in and the object's supersampled mask."""
    rng = as_rng(seed)
    side = size * SUPERSAMPLE
    canvas = scene_image(scene, side, rng)
    pose = pose or sample_pose(rng, look.scale)
    shape = shape_mask(look.cls, pose, side)
    canvas.paste(colour_layer(look, pose, side), mask=shape)
    return finish(canvas, size, rng), pose, shape


def finish(canvas: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """Downsample a supersampled canvas to ``size`` and add a light brightness change and noise."""
    small = np.asarray(canvas.resize((size, size), Image.LANCZOS, reducing_gap=2.0), dtype=np.float32)
    small *= rng.uniform(0.9, 1.1)
    small += rng.standard_normal(small.shape, dtype=np.float32) * rng.uniform(1.0, 4.0) + 0.5
    return Image.fromarray(np.clip(small, 0, 255).astype(np.uint8))


def render(cls: str, colour: str, scene: str = "plain", seed: Seed = 0, size: int = 64) -> Image.Image:
    """Render a plain object (what pretraining shows), e.g. ``render("star", "red", "beach", 3)``."""
    return render_look(Look(cls, colour), scene, seed, size)


def random_labels(rng: np.random.Generator) -> dict[str, str]:
    """Uniformly random class, colour and scene."""
    return {
        "class": CLASSES[int(rng.integers(len(CLASSES)))],
        "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
        "scene": SCENES[int(rng.integers(len(SCENES)))],
    }


def render_dataset(n: int, seed: int = 0, size: int = 64) -> Iterator[tuple[Image.Image, str, dict[str, str]]]:
    """Yield ``n`` random plain-object renders as ``(image, caption, labels)``.

    Item ``i`` depends only on ``(seed, i)``, so any slice of a dataset can be re-rendered alone.
    ``labels`` is ``{"class", "colour", "scene"}``.
    """
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        labels = random_labels(rng)
        img = render(labels["class"], labels["colour"], labels["scene"], rng, size)
        yield img, caption_for(labels["class"], labels["colour"], labels["scene"]), labels


def write_dataset(folder: str | Path, n: int, seed: int = 0, size: int = 64) -> Path:
    """Write ``n`` renders as ``NNNNN.png`` with ``NNNNN.txt`` caption sidecars; return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, caption, _) in enumerate(render_dataset(n, seed, size)):
        img.save(folder / f"{i:05d}.png", compress_level=1)
        (folder / f"{i:05d}.txt").write_text(caption + "\n")
    return folder
