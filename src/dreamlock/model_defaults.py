"""Sampling defaults a model folder can carry, so that `generate` and `evaluate` use them when the
user gives no ``--guidance``.

A model folder may hold ``dreamlock.json`` with ``{"guidance": 1.0}``; a run inherits the file of
its base model (``RunInfo.base``). The shipped toy model carries one: it was pretrained without
caption dropout and must be sampled without classifier-free guidance.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamlock.errors import UserError

DEFAULTS_FILE = "dreamlock.json"


def write_model_defaults(folder: str | Path, guidance: float) -> Path:
    """Write ``dreamlock.json`` into a model folder."""
    path = Path(folder) / DEFAULTS_FILE
    path.write_text(json.dumps({"guidance": guidance}, indent=2) + "\n")
    return path


def model_guidance(folder: str | Path | None) -> float | None:
    """The guidance a model folder recommends, or None (no folder, no file, no key)."""
    if folder is None:
        return None
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("guidance")
    except (json.JSONDecodeError, AttributeError):
        raise UserError(f"{path}: not a JSON object; fix it (e.g. {{\"guidance\": 7.5}}) or delete it") from None
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"{path}: \"guidance\" must be a number, got {value!r}")
    return float(value)
