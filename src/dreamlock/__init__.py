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


class _NoticeFilter(logging.Filter):
    """Drops one known import-time notice of a library that does not concern dreamlock's users."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


#: (logger, notice): transformers says on import that an image processor "requires torchvision";
#: dreamlock runs without torchvision and never takes that path. bitsandbytes (imported by diffusers'
#: quantizers) tries on CPUs with AVX512-BF16 to fetch an optional 4-bit CPU kernel through
#: ``kernels``, which refuses an unverified repository (and says so again offline); dreamlock uses
#: bitsandbytes for 8-bit Adam, and 4-bit only on CUDA, so the fallback is what it wants.
_QUIET = [("transformers.utils.import_utils", "requires torchvision"),
          ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),
          ("kernels._internals.hf_hub", "Skipping publisher trust check")]
for _logger, _text in _QUIET:
    logging.getLogger(_logger).addFilter(_NoticeFilter(_text))

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
