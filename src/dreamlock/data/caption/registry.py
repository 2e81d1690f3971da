"""Captioner registry: names -> ``"module:Class"``, imported only when asked for.

Every captioner has the same small shape: ``Cls(model: str | None = None, **options)`` and a
``caption(image) -> str`` method. This module also holds the helpers model-backed captioners
share to turn "no model", "missing package" and "cannot download" into one-line ``UserError``s.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

from PIL import Image

from dreamlock.errors import UserError

T = TypeVar("T")

CAPTIONERS: dict[str, str] = {
    "template": "dreamlock.data.caption.template:TemplateCaptioner",
    "toy": "dreamlock.toyworld.captioner:ToyCaptioner",
    "blip": "dreamlock.data.caption.blip:BlipCaptioner",
    "florence2": "dreamlock.data.caption.florence2:Florence2Captioner",
    "wd14": "dreamlock.data.caption.wd14:WD14Captioner",
}

#: Captioners that need ``--model``, and an example of what to pass.
MODEL_EXAMPLES: dict[str, str] = {
    "blip": "Salesforce/blip-image-captioning-base, or a local folder saved with save_pretrained",
    "florence2": "florence-community/Florence-2-base, or a local folder saved with save_pretrained",
    "wd14": "a folder holding model.onnx and selected_tags.csv, such as a download of SmilingWolf/wd-vit-tagger-v3",
}


@runtime_checkable
class Captioner(Protocol):
    """Anything that turns an RGB image into a caption."""

    def caption(self, image: Image.Image) -> str:
        """Describe ``image`` in one line."""
        ...


def check_name(name: str) -> str:
    """Return ``name`` if it is a registered captioner, else raise a one-line UserError."""
    if name not in CAPTIONERS:
        raise UserError(f"unknown captioner {name!r}; choose one of: {', '.join(CAPTIONERS)}")
    return name


def _import_class(name: str) -> type:
    module_name, attr = CAPTIONERS[name].split(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise UserError(
            f"captioner {name!r} is not available: cannot import {CAPTIONERS[name]} ({e}); "
            "check your dreamlock install or pick another --captioner"
        ) from None


def get_captioner(name: str, model: str | None = None, **options: Any) -> Captioner:
    """Build the captioner registered as ``name`` (imported lazily) with ``model`` and options."""
    cls = _import_class(check_name(name))
    try:
        inspect.signature(cls).bind(model=model, **options)
    except TypeError as e:
        raise UserError(f"captioner {name!r}: bad options {sorted(options)} ({e})") from None
    return cls(model=model, **options)


def require_package(captioner: str, module: str, install: str) -> Any:
    """Import an optional package, or raise a UserError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{captioner}: needs the '{module}' package; install it with: {install}") from None


def require_model(captioner: str, model: str | None) -> str:
    """The model reference, or a UserError explaining how to give one."""
    if not model or not str(model).strip():
        what = "FOLDER" if captioner == "wd14" else "PATH_OR_HUB_ID"
        raise UserError(f"{captioner}: no model given; pass --model {what} (e.g. {MODEL_EXAMPLES[captioner]})")
    return str(model).strip()


def _looks_like_path(ref: str) -> bool:
    """A Hub id is ``name`` or ``org/name``; anything else is meant as a folder."""
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_pretrained(captioner: str, model: str, loader: Callable[[str], T], expect: str = "save_pretrained") -> T:
    """Call ``loader`` on a local folder or a Hub id; any failure becomes a one-line UserError."""
    path = Path(model).expanduser()
    if path.exists():
        target, local = str(path), True
    elif _looks_like_path(model):
        raise UserError(f"{captioner}: model folder {model} does not exist; pass an existing folder or a Hub id")
    else:
        target, local = model, False
    try:
        return loader(target)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - loaders raise many types; the user needs one line
        if local:
            raise UserError(
                f"{captioner}: cannot load the model in {model} ({_first_line(e)}); "
                f"it must be a folder written by {expect}"
            ) from None
        offline = " (HF_HUB_OFFLINE is set, so only the local cache is used)" if _offline() else ""
        raise UserError(
            f"{captioner}: cannot load {model!r} from the Hugging Face Hub{offline}: {_first_line(e)}; "
            "check the id and your connection, or pass a local folder"
        ) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def torch_device() -> str:
    """'cuda' when a GPU is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
