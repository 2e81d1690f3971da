"""Defaults a model folder can carry, so that `generate` and `evaluate` use them when the user
gives no ``--guidance`` / ``--scorer`` / ``--prompts``.

A model folder may hold ``dreamlock.json`` with ``{"guidance": 1.0, "world": "toy"}``; a run
inherits the file of its base model (``RunInfo.base``). The shipped toy model carries one: it was
pretrained without caption dropout and must be sampled without classifier-free guidance, and it
draws the toy world, so `evaluate` scores it with the toy oracle and toy prompts. A model without
a ``world`` is a real one (DreamBench prompts, the clip-dino scorer).
"""

from __future__ import annotations

import json
from pathlib import Path

from dreamlock.errors import UserError

DEFAULTS_FILE = "dreamlock.json"

#: The ``world`` of the shipped toy model (and of every run trained from it).
TOY_WORLD = "toy"


def write_model_defaults(folder: str | Path, guidance: float | None = None, world: str | None = None,
                         image_guidance: float | None = None) -> Path:
    """Write ``dreamlock.json`` into a model folder (only the keys given; ``image_guidance``: an
    image editor's recommended image guidance)."""
    path = Path(folder) / DEFAULTS_FILE
    values = {k: v for k, v in (("guidance", guidance), ("world", world), ("image_guidance", image_guidance))
              if v is not None}
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def _read_key(folder: str | Path | None, key: str):
    """``dreamlock.json``'s value for ``key``, or None (no folder, no file, no key)."""
    if folder is None:
        return None
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get(key)
    except (json.JSONDecodeError, AttributeError):
        raise UserError(f"{path}: not a JSON object; fix it (e.g. {{\"guidance\": 7.5}}) or delete it") from None


def model_world(folder: str | Path | None) -> str | None:
    """The world a model folder says it draws (``"toy"`` for the toy model), or None: a real model."""
    value = _read_key(folder, "world")
    if value is not None and not isinstance(value, str):
        raise UserError(f"{Path(folder) / DEFAULTS_FILE}: \"world\" must be a string such as \"toy\", got {value!r}")
    return value


def world_of(run_or_model: str | Path) -> str | None:
    """:func:`model_world` of a run's base model, or of a model folder; read without loading it."""
    from dreamlock.runs import is_run, read_run

    path = Path(run_or_model)
    return model_world(read_run(path).base if is_run(path) else path)


def model_guidance(folder: str | Path | None, key: str = "guidance") -> float | None:
    """The guidance a model folder recommends (``key="image_guidance"``: an editor's image guidance),
    or None (no folder, no file, no key)."""
    value = _read_key(folder, key)
    path = Path(folder) / DEFAULTS_FILE if folder is not None else None
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"{path}: \"{key}\" must be a number, got {value!r}")
    return float(value)
