"""Hard negatives: images that share a subject's parts but are not the subject.

A judge of likeness must need outline, body colour and detail together. Each kind here keeps
some of a subject's look and breaks the rest, the ways a half-trained generator does:

- ``wrong_outline``: colours and pattern on another class's silhouette;
- ``ellipse``, ``blob``: colours and pattern through a shape that is no class at all;
- ``band``: colours and pattern as a band across the frame (no outline: "stripe bands");
- ``pieces``: the right silhouette cut into pieces that drift apart;
- ``no_detail``: the right outline and body colour, the detail missing;
- ``body_colour``: outline and detail right, another body colour;
- ``detail_colour``: outline and body colour right, the detail in another colour;
- ``other_detail``: outline and colours right, another kind of detail;
- ``punched``: outline and body colour right, the scene showing through where the detail belongs
  (red bands in a star's place, a ring with holes: what a generator draws when its codec cannot
  make the detail colour). Where the scene there would pass for the detail colour (white stripes
  on snow), it is drawn on the next scene that does not, so the negative is never the subject.

:func:`held_out` names the looks the oracle never trains on (a fixed hash of the look, plus the
built-in subjects), so its verdicts can be checked on looks it has not seen.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw

from dreamlock.toyworld.render import (SUPERSAMPLE, Look, Pose, Seed, as_rng, colour_layer, detail_mask, finish, sample_pose,
                                       scene_image, shape_mask)
from dreamlock.toyworld.vocab import CLASSES, COLOURS, DETAIL_COLOURS, DETAILS, SCENES

NEGATIVE_KINDS: tuple[str, ...] = ("wrong_outline", "ellipse", "blob", "band", "pieces", "no_detail", "body_colour",
                                   "detail_colour", "other_detail", "punched")

#: Kinds whose shape is no class's silhouette (none at all, or one with holes): no look of its own.
SHAPE_KINDS: frozenset[str] = frozenset({"ellipse", "blob", "band", "pieces", "punched"})

#: Mean RGB distance between the scene behind a punched-out detail and the detail colour below
#: which the scene would pass for the detail (measured over whole scenes: white vs plain 63, vs
#: snow 61 (ground 36); black vs night 42, vs forest 50; every other pair >= 125).
PUNCH_CONTRAST = 80.0

#: Percent of all looks (class x colour x detail x detail colour) the oracle never trains on.
HELD_OUT_PERCENT = 15


def look_key(look: Look) -> tuple[str, str, str, str | None]:
    """What makes a look a look: class, colour, detail, detail colour (size and pose do not)."""
    return (look.cls, look.colour, look.detail, look.detail_colour)


def held_out(look: Look) -> bool:
    """Whether the oracle keeps ``look`` out of training (about 15% of looks, and the built-in subjects)."""
    from dreamlock.toyworld.subjects import BUILTIN_SUBJECTS

    if look.detail == "none":
        return False
    key = look_key(look)
    if any(look_key(s.look()) == key for s in BUILTIN_SUBJECTS.values()):
        return True
    return zlib.crc32("|".join(map(str, key)).encode()) % 100 < HELD_OUT_PERCENT


def _other(options, current, rng: np.random.Generator):
    choices = [o for o in options if o != current]
    return choices[int(rng.integers(len(choices)))]


def _polygon_mask(points: np.ndarray, side: int) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in points], fill=255)
    return mask


def _rotate(points: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return points @ np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]).T


def _ellipse(pose: Pose, side: int, rng: np.random.Generator) -> Image.Image:
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    ax, ay = rng.uniform(0.55, 1.0), rng.uniform(0.35, 0.75)
    pts = _rotate(np.stack([ax * np.cos(t), ay * np.sin(t)], 1), pose.angle) * pose.radius * side
    return _polygon_mask(pts + (pose.cx * side, pose.cy * side), side)


def _blob(pose: Pose, side: int, rng: np.random.Generator) -> Image.Image:
    t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    r = 0.75 + sum(rng.uniform(0.05, 0.22) * np.cos(k * t + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    pts = np.stack([r * np.cos(t), r * np.sin(t)], 1) * pose.radius * side
    return _polygon_mask(pts + (pose.cx * side, pose.cy * side), side)


def _band(pose: Pose, side: int, rng: np.random.Generator) -> Image.Image:
    """A straight band across the whole frame, about as tall as the object, at a small tilt."""
    half = pose.radius * side * rng.uniform(0.45, 0.9)
    L = 2 * side
    pts = _rotate(np.array([[-L, -half], [L, -half], [L, half], [-L, half]]), rng.uniform(-20, 20))
    return _polygon_mask(pts + (pose.cx * side, pose.cy * side), side)


def _pieces(cls: str, pose: Pose, side: int, rng: np.random.Generator) -> Image.Image:
    """The silhouette cut by 2-3 straight gaps, each piece shifted away from the centre."""
    whole = np.asarray(shape_mask(cls, pose, side)) > 127
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    label = np.zeros((side, side), dtype=np.int64)
    for k in range(int(rng.integers(2, 4))):
        a = rng.uniform(0, math.pi)
        d = (xx - pose.cx * side) * math.cos(a) + (yy - pose.cy * side) * math.sin(a) - rng.uniform(-0.3, 0.3) * pose.radius * side
        label = label * 2 + (d > 0)
    out = np.zeros((side, side), dtype=np.uint8)
    for piece in np.unique(label[whole]):
        part = whole & (label == piece)
        cy, cx = yy[part].mean(), xx[part].mean()
        vx, vy = cx - pose.cx * side, cy - pose.cy * side
        norm = math.hypot(vx, vy) or 1.0
        shift = pose.radius * side * rng.uniform(0.25, 0.5)
        dx, dy = int(round(vx / norm * shift)), int(round(vy / norm * shift))
        moved = np.roll(np.roll(part, dy, axis=0), dx, axis=1)
        out[moved] = 255
    return Image.fromarray(out)


def _punched(look: Look, pose: Pose, scene: str, canvas: Image.Image, rng: np.random.Generator
             ) -> tuple[Image.Image, Image.Image]:
    """The silhouette with the detail cut out, and the canvas to paste it on: ``canvas`` unless its
    pixels behind the holes are within :data:`PUNCH_CONTRAST` of the detail colour, then a canvas of
    the next scene (in :data:`SCENES` order) that contrasts."""
    side = canvas.size[0]
    holes = detail_mask(look, pose, side)
    mask = np.asarray(shape_mask(look.cls, pose, side)).copy()
    inside = holes & (mask > 127)
    mask[holes] = 0
    colour = np.asarray(DETAIL_COLOURS[look.detail_colour], np.float32)
    start = SCENES.index(scene)
    for k in range(len(SCENES)):
        if k:
            canvas = scene_image(SCENES[(start + k) % len(SCENES)], side, rng)
        behind = np.asarray(canvas, np.float32)[inside]
        if not len(behind) or np.linalg.norm(behind - colour, axis=1).mean() >= PUNCH_CONTRAST:
            break
    return canvas, Image.fromarray(mask)


def negative_look(look: Look, kind: str, rng: np.random.Generator) -> Look:
    """The look a negative of ``kind`` is painted with (``look`` itself for the shape kinds)."""
    if kind == "wrong_outline":
        return replace(look, cls=_other(CLASSES, look.cls, rng))
    if kind == "no_detail":
        return Look(look.cls, look.colour, scale=look.scale)
    if kind == "body_colour":
        options = [c for c in COLOURS if c not in (look.colour, look.detail_colour)]
        return replace(look, colour=options[int(rng.integers(len(options)))])
    if kind == "detail_colour":
        options = [c for c in DETAIL_COLOURS if c not in (look.colour, look.detail_colour)]
        return replace(look, detail_colour=options[int(rng.integers(len(options)))])
    if kind == "other_detail":
        return replace(look, detail=_other(DETAILS[1:], look.detail, rng))
    return look


def render_negative(look: Look, kind: str, scene: str = "plain", seed: Seed = 0, size: int = 64) -> Image.Image:
    """A hard negative of ``kind`` (see :data:`NEGATIVE_KINDS`) for a subject ``look``."""
    return render_negative_with_look(look, kind, scene, seed, size)[0]


def render_negative_with_look(look: Look, kind: str, scene: str = "plain", seed: Seed = 0,
                              size: int = 64) -> tuple[Image.Image, Look | None]:
    """:func:`render_negative` and the look it shows (None for the :data:`SHAPE_KINDS`)."""
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {kind!r}; choose one of {', '.join(NEGATIVE_KINDS)}")
    if look.detail == "none":
        raise ValueError("hard negatives are made from a subject look (one with a detail)")
    rng = as_rng(seed)
    side = size * SUPERSAMPLE
    canvas = scene_image(scene, side, rng)
    pose = sample_pose(rng, look.scale)
    painted = negative_look(look, kind, rng)
    if kind == "ellipse":
        mask = _ellipse(pose, side, rng)
    elif kind == "blob":
        mask = _blob(pose, side, rng)
    elif kind == "band":
        mask = _band(pose, side, rng)
    elif kind == "pieces":
        mask = _pieces(look.cls, pose, side, rng)
    elif kind == "punched":
        canvas, mask = _punched(look, pose, scene, canvas, rng)
    else:
        mask = shape_mask(painted.cls, pose, side)
    canvas.paste(colour_layer(painted, pose, side), mask=mask)
    return finish(canvas, size, rng), (None if kind in SHAPE_KINDS else painted)
