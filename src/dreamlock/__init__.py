"""dreamlock: lock a subject into a text-to-image diffusion model from a few photos.

The Python API mirrors the CLI: ``dreamlock.prepare(...)``, ``dreamlock.caption(...)``,
``dreamlock.train(...)``, ``dreamlock.generate(...)``, ``dreamlock.evaluate(...)``,
``dreamlock.export(...)``, ``dreamlock.demo(...)``. Imports are lazy so that ``import dreamlock``
stays fast and light.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"


class _NoTorchvisionNotice(logging.Filter):
    """transformers says on import that an image processor "requires torchvision (not installed)";
    dreamlock deliberately runs without torchvision and never uses those processors' torchvision path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())

_API = {
    "prepare": "dreamlock.data.prepare:prepare",
    "caption": "dreamlock.data.caption:caption",
    "train": "dreamlock.training.api:train",
    "generate": "dreamlock.generation:generate",
    "evaluate": "dreamlock.evaluation:evaluate",
    "export": "dreamlock.exporting:export",
    "demo": "dreamlock.toyworld.demo:demo",
}

__all__ = list(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dreamlock' has no attribute {name!r}")
