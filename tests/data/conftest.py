"""Image builders for the data-step tests: every file is made here, nothing is downloaded."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

# Captioner tests must never try the network (no Hub access in CI or here).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like RGB image: smooth random blobs, different for each seed (distinct hashes)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """An image whose left half is ``left`` and right half is ``right``."""
    im = Image.new("RGB", size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    """Save and return the path (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def exif_jpeg(path: Path, orientation: int) -> Path:
    """A 200x100 JPEG, red left half / blue right half, tagged with an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(halves((200, 100), RED, BLUE), path, exif=exif.tobytes(), quality=95)


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in the middle of its scan data."""
    buf = io.BytesIO()
    photo(7, (256, 256)).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A tiny PNG file whose header declares a huge size (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )
    return path


def animated_gif(path: Path, colours=(RED, GREEN, BLUE), size=(300, 300)) -> Path:
    """An animated GIF, one solid colour per frame."""
    frames = [Image.new("RGB", size, c) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def sixteen_bit_png(path: Path, size=(300, 300)) -> Path:
    """A 16-bit grayscale PNG: left half 16384, right half 49152."""
    arr = np.full((size[1], size[0]), 49152, dtype=np.uint16)
    arr[:, : size[0] // 2] = 16384
    return save(Image.fromarray(arr), path)


def rgba_png(path: Path, size=(300, 300)) -> Path:
    """Transparent left half, opaque red right half."""
    im = Image.new("RGBA", size, RED + (255,))
    im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return save(im, path)


def palette_png(path: Path, size=(300, 300)) -> Path:
    """Palette image: index 0 transparent (left half), index 1 green (right half)."""
    im = Image.new("P", size, 1)
    im.putpalette([0, 0, 0, *GREEN] + [0] * (254 * 3))
    im.paste(0, (0, 0, size[0] // 2, size[1]))
    return save(im, path, transparency=0)


def cmyk_jpeg(path: Path, size=(300, 300)) -> Path:
    """A CMYK JPEG (pure cyan)."""
    return save(Image.new("CMYK", size, (255, 0, 0, 0)), path, quality=95)


def tree_digest(root: Path) -> dict[str, tuple[str, int, int]]:
    """(sha256, mode, mtime_ns) of every file under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() or p.is_symlink():
            st = p.lstat()
            data = p.read_bytes() if p.is_file() else b""
            out[p.relative_to(root).as_posix()] = (hashlib.sha256(data).hexdigest(), st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An empty SRC folder."""
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An OUT path (not created)."""
    return tmp_path / "out"


class Builders:
    """The builders above, handed to tests as the ``img`` fixture (test modules do not import conftest)."""

    RED, GREEN, BLUE = RED, GREEN, BLUE
    photo = staticmethod(photo)
    halves = staticmethod(halves)
    save = staticmethod(save)
    exif_jpeg = staticmethod(exif_jpeg)
    truncated_jpeg = staticmethod(truncated_jpeg)
    bomb_png = staticmethod(bomb_png)
    animated_gif = staticmethod(animated_gif)
    sixteen_bit_png = staticmethod(sixteen_bit_png)
    rgba_png = staticmethod(rgba_png)
    palette_png = staticmethod(palette_png)
    cmyk_jpeg = staticmethod(cmyk_jpeg)
    tree_digest = staticmethod(tree_digest)


@pytest.fixture
def img() -> type[Builders]:
    """Image builders."""
    return Builders
