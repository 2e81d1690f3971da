"""Typed configuration shared by every step: TOML file + flags + ``--set key=value`` overrides.

Each step defines a pydantic model with ``extra="forbid"`` (see ``StrictModel``); ``load_config``
merges the three sources in order file < flags < --set, and turns every validation problem into a
one-line ``UserError`` that names the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from dreamlock.errors import UserError

CONFIG_VERSION = 1

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file into a dict, or raise a one-line UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path} (give an existing .toml file)")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config ({e.strerror})") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``key=value`` (dotted keys for nested tables). The value is read as a TOML literal
    when it parses as one (numbers, booleans, arrays, quoted strings) and as a plain string otherwise."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=1e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"--set {item!r}: empty key; expected key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {'.'.join(keys)}: '{k}' is not a table")
        node = child
    node[keys[-1]] = value


def merge_sources(
    file_data: dict[str, Any] | None,
    flags: dict[str, Any] | None = None,
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """Merge config sources: file < flags (None values ignored) < --set overrides."""
    data: dict[str, Any] = dict(file_data or {})
    for key, value in (flags or {}).items():
        if value is not None:
            _set_nested(data, key.split("."), value)
    for item in overrides:
        keys, value = parse_override(item)
        _set_nested(data, keys, value)
    return data


def validation_message(err: ValidationError, source: str = "config") -> str:
    """One line naming the first offending key, what is wrong, and how to fix it."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first.get("loc", ()))
    if not key:  # a rule across several keys: its message names them
        return f"{source}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}"
    if first.get("type") == "extra_forbidden":
        return f"{source}: unknown key '{key}'; check its spelling (see `dreamlock train --help`)"
    got = first.get("input")
    got_text = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    more = f"; {len(err.errors()) - 1} more problem(s)" if len(err.errors()) > 1 else ""
    return f"{source}: key '{key}': {first.get('msg', 'invalid')}{got_text}{more}"


def validate(model_cls: type[M], data: dict[str, Any], source: str = "config") -> M:
    """Build ``model_cls`` from ``data``; any problem becomes a one-line UserError."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise UserError(validation_message(e, source)) from None


def load_config(
    model_cls: type[M],
    path: Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: Iterable[str] = (),
) -> M:
    """Load a config: TOML file (optional) + CLI flags + ``--set`` overrides, validated."""
    file_data = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "config"
    return validate(model_cls, merge_sources(file_data, flags, overrides), source)


def dump_config(config: BaseModel, path: Path) -> None:
    """Write a config as TOML (None values left out; paths as strings)."""
    data = config.model_dump(mode="json", exclude_none=True)
    Path(path).write_text(tomli_w.dumps(data))
