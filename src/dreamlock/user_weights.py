"""LoRA and embedding files the user brings to `generate` (from another trainer, Civitai, an export).

Files are read as safetensors; pickles (.bin / .pt / .ckpt) are refused unless the user opts in,
and are then read with torch's weights-only loader, which cannot run code. A file made for another
model family is refused with one line rather than loaded silently into nothing.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file

from dreamlock.errors import UserError
from dreamlock.loading import PICKLE_SUFFIXES

#: the key A1111 / ComfyUI single-vector embeddings keep their vectors under (the token is the file name)
A1111_KEY = "emb_params"


def read_weights(path: str | Path, what: str, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A LoRA / embedding file as tensors; one-line errors for a missing, pickled or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UserError(f"{path}: a pickled {what} can run arbitrary code; convert it to .safetensors "
                            "or pass --allow-pickle if you trust it")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - the weights-only loader refuses anything but tensors
            raise UserError(f"{path}: not a plain tensor file ({type(e).__name__}); refusing to load it") from None
    elif path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file
            raise UserError(f"{path}: cannot read this .safetensors file ({str(e)[:120]})") from None
    else:
        raise UserError(f"{path}: unknown {what} file type '{path.suffix}'; give a .safetensors file")
    if not isinstance(state, dict) or not state:
        raise UserError(f"{path}: holds no tensors; give a {what} file")
    return state


def add_lora(pipe, family, path: str | Path, name: str, allow_pickle: bool = False) -> None:
    """Load a LoRA file (diffusers or kohya keys) as adapter ``name``; refuse one for another family."""
    from dreamlock.exporting.kohya import diffusers_lora_state

    state = read_weights(path, "LoRA", allow_pickle)
    try:
        with _diffusers_silent():
            pipe.load_lora_weights(diffusers_lora_state(pipe, family, state), adapter_name=name)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"{path}: this LoRA does not fit the {family.name} model ({_first_reason(e)}); "
                        f"give a LoRA trained on a {family.name} model") from None
    if not any(name in names for names in pipe.get_list_adapters().values()):
        first = next(iter(state)).split(".")[0]
        raise UserError(f"{path}: no key of this LoRA matches the {family.name} model (its keys start with "
                        f"'{first}'); it was made for another model family: give a LoRA trained on a {family.name} model")


def _first_reason(error: Exception) -> str:
    """The telling line of a loading error: the first size mismatch, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    mismatch = next((line for line in lines if line.startswith("size mismatch")), None)
    found = re.match(r"size mismatch for (\S+): .*?Size\((\[.*?\])\).*?Size\((\[.*?\])\)", mismatch or "")
    if found:
        name, theirs, ours = found.groups()
        return f"layer shapes differ: {name.replace('.weight', '')} is {theirs} in the LoRA, {ours} in the model"
    return (lines or [type(error).__name__])[0][:160]


@contextmanager
def _diffusers_silent():
    """diffusers logs a failed adapter load before raising; the user gets our one line instead."""
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(diffusers_logging.CRITICAL + 10)
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def add_embedding(pipe, family, path: str | Path, token: str | None = None, allow_pickle: bool = False) -> list[str]:
    """Load an embedding file (A1111 ``emb_params``, diffusers ``{token: vectors}``, or SDXL's
    ``clip_l``/``clip_g``); the token is ``token``, else the file's name (A1111) or its key."""
    path = Path(path)
    state = read_weights(path, "embedding", allow_pickle)
    if A1111_KEY in state:
        state = {token or path.stem: state[A1111_KEY]}
    elif token is not None and len(state) == 1:
        state = {token: next(iter(state.values()))}
    try:
        return family.add_embeddings(pipe, state, [token or path.stem])
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{path}: this embedding does not fit the {family.name} model's text encoder "
                        f"({str(e).splitlines()[0][:120]}); give one trained on a "
                        f"{family.name} model") from None
