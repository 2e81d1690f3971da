"""Near-duplicate detection with two small perceptual hashes (Pillow + NumPy only).

- ``dhash``: difference hash — is each pixel of a 9x8 grayscale thumbnail brighter than its
  right neighbour? Robust to rescaling, recompression and small colour shifts.
- ``phash``: DCT hash — signs of the low-frequency DCT coefficients of a 32x32 thumbnail
  relative to their median. Robust to small edits and blur.

Two images are near-duplicates when *both* hashes are within ``max_distance`` bits: requiring both
keeps distinct photos of the same subject (same pose, different shot) apart.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

HASH_SIDE = 8


def _thumb(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    gray = image.convert("L").resize(size, Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float64)


def _bits_to_int(bits: np.ndarray) -> int:
    return int("".join("1" if b else "0" for b in bits.ravel()), 2)


def dhash(image: Image.Image, side: int = HASH_SIDE) -> int:
    """64-bit (for side 8) difference hash."""
    px = _thumb(image, (side + 1, side))
    return _bits_to_int(px[:, 1:] > px[:, :-1])


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix of size n x n."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash(image: Image.Image, side: int = HASH_SIDE, factor: int = 4) -> int:
    """64-bit (for side 8) DCT perceptual hash (DC term excluded from the median)."""
    n = side * factor
    px = _thumb(image, (n, n))
    d = _dct_matrix(n)
    low = (d @ px @ d.T)[:side, :side]
    median = np.median(low.ravel()[1:])
    return _bits_to_int(low > median)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


class DuplicateFinder:
    """Remembers the hashes of kept images and names the first near-duplicate of a new one."""

    def __init__(self, max_distance: int = 4):
        self.max_distance = max_distance
        self._seen: list[tuple[str, int, int]] = []

    @staticmethod
    def hashes(image: Image.Image) -> tuple[int, int]:
        """(dhash, phash) of an image."""
        return dhash(image), phash(image)

    def find(self, hashes: tuple[int, int]) -> str | None:
        """The name of the first kept image within ``max_distance`` on both hashes, or None."""
        d, p = hashes
        for name, d0, p0 in self._seen:
            if hamming(d, d0) <= self.max_distance and hamming(p, p0) <= self.max_distance:
                return name
        return None

    def add(self, name: str, hashes: tuple[int, int]) -> None:
        """Remember a kept image."""
        self._seen.append((name, *hashes))
