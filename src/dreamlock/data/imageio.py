"""Safe image loading: every way a photo folder can go wrong becomes one readable reason.

``read_image`` reads a file's bytes (never writing to it), decodes it fully with Pillow's
strict settings (truncated data is an error, huge declared sizes are an error), applies the
EXIF orientation, and converts any colour mode to 8-bit RGB with transparency flattened onto a
background colour. Problems raise ``ImageLoadError`` with a one-line reason and whether the file
should count as *skipped* (not meant to be an image) or *failed* (meant to be one, but broken).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: File extensions treated as images (a broken file with one of these *fails*; other files are skipped).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)
#: Pillow decoders we allow. Others (EPS, PSD, ...) are refused: smaller attack surface, fewer surprises.
#: (Camera MPO files are opened by the JPEG decoder in recent Pillow, by "MPO" in older ones.)
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF")
#: Default pixel limit (Pillow's own default, ~89 MP); larger declared sizes are refused as bombs.
DEFAULT_MAX_PIXELS = 89_478_485
#: Default byte limit for one file.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

RGB = tuple[int, int, int]
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageLoadError(Exception):
    """A file that cannot be used. ``skipped`` is True when it was never meant to be an image."""

    def __init__(self, reason: str, skipped: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.skipped = skipped


@dataclass
class LoadedImage:
    """An upright 8-bit RGB image and what was done to get it."""

    image: Image.Image
    format: str
    stored_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation."""
        return self.image.size


def is_image_name(path: Path) -> bool:
    """True when the file name has an image extension we read."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def open_fitted(path: Path, size: tuple[int, int], mode: str, resample: Image.Resampling) -> np.ndarray:
    """A training image (or mask) as an array: upright by its EXIF orientation, in ``mode``,
    center-cropped and resized to ``size`` (width, height) with ``resample`` when it is another size."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert(mode)
        if im.size != tuple(size):
            im = ImageOps.fit(im, tuple(size), resample)
        return np.asarray(im)


def same_name_in(images: list[Path], subdir: str) -> list[Path | None]:
    """For each image, the image of the same name (any image suffix) in ``subdir/`` beside it, or
    None: masks (``masks/``), images before an edit (``input/``). Each folder is listed once."""
    found: dict[Path, dict[str, Path]] = {}
    out = []
    for image in images:
        folder = image.parent / subdir
        if folder not in found:
            found[folder] = ({p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_name(p)}
                             if folder.is_dir() else {})
        out.append(found[folder].get(image.stem))
    return out


def _open_bytes(path: Path) -> bytes:
    """Read a file's bytes, read-only. Kept separate so tests can make it raise."""
    with open(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def strict_pillow(max_pixels: int) -> Iterator[None]:
    """Pillow settings for untrusted files: no half-decoded truncated data, bombs are errors."""
    old_truncated, old_max = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = old_truncated, old_max


def _read_bytes(path: Path, max_bytes: int, expected: bool) -> bytes:
    """Read the file or raise ImageLoadError (empty, too big, unreadable)."""
    try:
        data = _open_bytes(path)
    except PermissionError:
        raise ImageLoadError("permission denied: cannot read the file (check its permissions)") from None
    except IsADirectoryError:
        raise ImageLoadError("is a folder, not a file", skipped=True) from None
    except OSError as e:
        raise ImageLoadError(f"cannot read the file ({e.strerror or e})") from None
    if not data:
        raise ImageLoadError("empty file (0 bytes)", skipped=not expected)
    if len(data) > max_bytes:
        raise ImageLoadError(f"file too large ({len(data) / 2**20:.0f} MiB > {max_bytes / 2**20:.0f} MiB limit)")
    return data


def _bomb_reason(max_pixels: int, size: tuple[int, int] | None = None) -> str:
    declared = f" {size[0]}x{size[1]}" if size else ""
    return (
        f"image too large: declared size{declared} exceeds the {max_pixels:,}-pixel limit "
        "(possible decompression bomb); downscale it first"
    )


def _unsupported_format(data: bytes) -> str | None:
    """Name the format of a file Pillow knows but we refuse, without decoding it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.format
    except Exception:  # noqa: BLE001 - only used to word the reason
        return None


def _open_image(data: bytes, path: Path, max_pixels: int, expected: bool) -> Image.Image:
    """Identify the image (headers only) or raise ImageLoadError."""
    Image.init()  # register every plugin: `formats=` only accepts registered ones
    formats = [f for f in ALLOWED_FORMATS if f in Image.OPEN]
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(_bomb_reason(max_pixels)) from None
    except UnidentifiedImageError:
        fmt = _unsupported_format(data)
        if fmt:
            raise ImageLoadError(
                f"unsupported image format {fmt}; convert it to PNG or JPEG", skipped=not expected
            ) from None
        if expected:
            raise ImageLoadError(
                f"not a valid image: the file is named {path.suffix} but its content is not a readable image"
            ) from None
        raise ImageLoadError(f"not an image ({path.suffix or 'no extension'})", skipped=True) from None
    except Exception as e:  # noqa: BLE001 - malformed headers raise many types
        raise ImageLoadError(f"corrupt image header ({type(e).__name__}: {e})") from None
    if im.width * im.height > max_pixels:
        raise ImageLoadError(_bomb_reason(max_pixels, im.size))
    return im


def _decode(im: Image.Image, max_pixels: int) -> list[str]:
    """Decode the first frame fully; return notes. Truncated or corrupt data raise ImageLoadError."""
    notes = []
    frames = getattr(im, "n_frames", 1)
    if getattr(im, "is_animated", False) or frames > 1:
        notes.append(f"animated ({frames} frames): used first frame")
    try:
        im.seek(0)
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(_bomb_reason(max_pixels, im.size)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise ImageLoadError(f"truncated or corrupt image data ({e}); re-export the file") from None
    return notes


def _orient(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Apply the EXIF orientation tag, if any."""
    try:
        orientation = im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - broken EXIF must not fail a good image
        return im, ["unreadable EXIF data ignored"]
    if orientation in (None, 1):
        return im, []
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001
        return im, [f"EXIF orientation {orientation} could not be applied"]
    return upright, [f"rotated upright (EXIF orientation {orientation})"]


def _high_bit_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit grayscale or float to 8-bit L. I;16 scales from 0..65535; I and F by their range."""
    arr = np.asarray(im).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if im.mode.startswith("I;16"):
        scale = 65535.0
    elif im.mode == "F" and peak <= 1.0:
        scale = 1.0
    else:
        scale = next((s for s in (255.0, 65535.0) if peak <= s), max(peak, 1.0))
    out = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _to_srgb(im: Image.Image) -> Image.Image | None:
    """Convert with the embedded ICC profile to sRGB; None when there is none or it fails."""
    icc = im.info.get("icc_profile")
    if not icc:
        return None
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode == "RGB" and "srgb" in (ImageCms.getProfileDescription(profile) or "").lower():
            return None
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(im, profile, srgb, outputMode="RGB")
    except Exception:  # noqa: BLE001 - fall back to a plain conversion
        return None


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def flatten(im: Image.Image, background: RGB) -> Image.Image:
    """Composite an image with transparency onto a solid background; return RGB."""
    rgba = im.convert("RGBA")
    base = Image.new("RGBA", rgba.size, background + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def to_rgb(im: Image.Image, background: RGB = (255, 255, 255)) -> tuple[Image.Image, list[str]]:
    """Convert any Pillow mode to 8-bit RGB; transparent areas go onto ``background``."""
    mode = im.mode
    if mode in _HIGH_BIT_MODES:
        return _high_bit_to_l(im).convert("RGB"), [f"converted {mode} (high bit depth) to 8-bit RGB"]
    if mode == "CMYK":
        converted = _to_srgb(im)
        how = "with its ICC profile" if converted is not None else "without a colour profile"
        return converted or im.convert("RGB"), [f"converted CMYK to RGB {how}"]
    if _has_alpha(im):
        rgba = im.convert("RGBA")
        notes = []
        if rgba.getchannel("A").getextrema()[0] < 255:
            name = "white" if background == (255, 255, 255) else "black" if background == (0, 0, 0) else str(background)
            notes.append(f"transparency flattened onto {name}")
        return flatten(rgba, background), notes
    if mode == "RGB":
        converted = _to_srgb(im)
        return (converted, ["converted from its ICC profile to sRGB"]) if converted is not None else (im, [])
    try:
        return im.convert("RGB"), ([] if mode in ("L", "P", "1") else [f"converted {mode} to RGB"])
    except ValueError as e:
        raise ImageLoadError(f"cannot convert colour mode {mode} to RGB ({e})") from None


def read_image(
    path: Path,
    background: RGB = (255, 255, 255),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Load ``path`` as an upright 8-bit RGB image, or raise ``ImageLoadError`` with the reason.

    The file is only ever opened for reading. Animated images give their first frame (noted).
    """
    path = Path(path)
    expected = is_image_name(path)
    data = _read_bytes(path, max_bytes, expected)
    with strict_pillow(max_pixels):
        im = _open_image(data, path, max_pixels, expected)
        notes = _decode(im, max_pixels)
        fmt, stored = im.format or "?", im.size
        im, orient_notes = _orient(im)
        rgb, mode_notes = to_rgb(im, background)
    rgb.load()
    return LoadedImage(image=rgb, format=fmt, stored_size=stored, notes=notes + orient_notes + mode_notes)
