"""Atomic file writes: a hidden scratch file beside the target, renamed onto it only when complete,
so that an interrupted write never leaves a half-written file under the real name."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a scratch path (``.name.tmp`` beside ``path``) to write; on success it replaces ``path``,
    on failure it is removed and ``path`` is left as it was."""
    path = Path(path)
    scratch = path.with_name(f".{path.name}.tmp")
    try:
        yield scratch
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as scratch:
        scratch.write_text(text, encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as scratch:
        scratch.write_bytes(data)
