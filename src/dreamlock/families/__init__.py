"""Model families: one adapter module each, found through this registry.

An adapter (see ``families/base.py``) owns everything family-specific: components, prompt
encoding, the denoiser call, the objective, LoRA targets and file formats. Adding a family is
one module plus one line in ``FAMILIES``: its adapter and the ``model_index.json`` class names
that mean it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from dreamlock.errors import UserError

if TYPE_CHECKING:
    from dreamlock.families.base import ModelFamily

#: name -> (adapter "module:Class", pipeline class names in model_index.json)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sd": ("dreamlock.families.sd:SDAdapter", ("StableDiffusionPipeline",)),  # SD 1.x / 2.x
    "sdxl": ("dreamlock.families.sdxl:SDXLAdapter", ("StableDiffusionXLPipeline",)),
    "sd3": ("dreamlock.families.sd3:SD3Adapter", ("StableDiffusion3Pipeline",)),  # SD 3 / 3.5
    "flux": ("dreamlock.families.flux:FluxAdapter", ("FluxPipeline",)),  # FLUX.1 dev / schnell
    "ip2p": ("dreamlock.families.ip2p:IP2PAdapter", ("StableDiffusionInstructPix2PixPipeline",)),  # InstructPix2Pix
    "sd-upscale": ("dreamlock.families.upscale:UpscaleAdapter", ("StableDiffusionUpscalePipeline",)),  # SD x4 upscaler
    "if-sr": ("dreamlock.families.if_sr:IFSuperResolutionAdapter", ("IFSuperResolutionPipeline",)),  # DeepFloyd IF II
}
DEFAULT_FAMILY = "sd"


def get_family(name: str) -> "type[ModelFamily]":
    """Return the adapter class for a family name."""
    if name not in FAMILIES:
        raise UserError(f"unknown model family '{name}'; choose one of: {', '.join(FAMILIES)}")
    module, attr = FAMILIES[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


def family_of_pipeline(pipe) -> "type[ModelFamily]":
    """The adapter class of a loaded pipeline (by its class name, as in ``model_index.json``)."""
    for name, (_, class_names) in FAMILIES.items():
        if type(pipe).__name__ in class_names:
            return get_family(name)
    raise UserError(f"a {type(pipe).__name__} is not a supported model family ({', '.join(FAMILIES)})")


def _model_index(base: str | Path | None) -> Path | None:
    if base is None:
        return None
    path = Path(base).expanduser()
    index = path / "model_index.json" if path.is_dir() else None
    return index if index is not None and index.is_file() else None


def detect_family(base: str | Path, base_config: str | Path | None = None) -> str:
    """The family of a model folder (or of a single file's ``--base-config`` folder), read from its
    ``model_index.json``; the default family for hub ids and files without a config folder."""
    index = _model_index(base) or _model_index(base_config)
    if index is None:
        return DEFAULT_FAMILY
    try:
        class_name = json.loads(index.read_text()).get("_class_name")
    except (json.JSONDecodeError, AttributeError):
        raise UserError(f"{index}: not a JSON object; restore the model folder's model_index.json") from None
    for name, (_, class_names) in FAMILIES.items():
        if class_name in class_names:
            return name
    raise UserError(f"{index}: a {class_name} is not a supported model family "
                    f"({', '.join(FAMILIES)}); use a model of one of these, or force one with --family")
