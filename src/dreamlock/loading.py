"""Load a base model from wherever the user keeps it: a diffusers folder, a single file, a hub id.

Pickled checkpoints (.ckpt, .pt, .bin) are refused unless the user opts in with ``allow_pickle``.
Every failure is a one-line ``UserError`` that says what to give instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from dreamlock.errors import UserError

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}
SINGLE_FILE_SUFFIXES = {".safetensors"} | PICKLE_SUFFIXES


def _quiet_transformers() -> None:
    """Library chatter (deprecations, 'no LoRA keys for the text encoder') is not for our users."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _load_folder(family, path: Path, dtype: torch.dtype, skip: dict):
    if not (path / "model_index.json").is_file():
        raise UserError(f"{path}: not a diffusers model folder (no model_index.json); give a folder saved with save_pretrained")
    try:
        return family.pipeline_class.from_pretrained(path, dtype=dtype, **family.load_kwargs, **skip)
    except OSError as e:
        first = str(e).splitlines()[0]
        if "safetensors" in first and skip.get("use_safetensors"):
            raise UserError(f"{path}: a component has pickled weights only ({first[:160]}); pickles can run code: "
                            "convert them to .safetensors, or pass --allow-pickle to load them with torch's "
                            "weights-only loader") from None
        raise UserError(f"{path}: cannot load ({first[:160]})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        found = json.loads((path / "model_index.json").read_text()).get("_class_name", "?")
        raise UserError(f"{path}: cannot load this {found} as a {family.name} model ({str(e).splitlines()[0][:120]}); "
                        "leave --family out to use the model's own family") from None


def quantization_config(kind: str, component: str, compute_dtype: torch.dtype):
    """diffusers' pipeline quantization of ``component``: ``nf4`` = bitsandbytes 4-bit NF4 (QLoRA's
    base; diffusers' bitsandbytes loader needs a GPU), ``fp8`` = optimum-quanto float8 weights (any device)."""
    from diffusers.quantizers import PipelineQuantizationConfig

    if kind == "fp8":
        import warnings

        from diffusers import QuantoConfig

        # diffusers marks its Quanto backend deprecated for 1.0; it is the fp8 path that runs on CPU and GPU today
        warnings.filterwarnings("ignore", message=r".*Quanto.* deprecated", category=FutureWarning)

        # a quant_mapping, because diffusers' and transformers' QuantoConfig signatures differ
        return PipelineQuantizationConfig(quant_mapping={component: QuantoConfig(weights_dtype="float8")})
    kwargs = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": compute_dtype}
    return PipelineQuantizationConfig(quant_backend="bitsandbytes_4bit", quant_kwargs=kwargs,
                                      components_to_quantize=[component])


def _load_single_file(family, path: Path, dtype: torch.dtype, config: str | None, allow_pickle: bool, skip: dict):
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UserError(
            f"{path}: pickled checkpoints can run arbitrary code; convert it to .safetensors or pass --allow-pickle if you trust it"
        )
    if config is None:
        raise UserError(f"{path}: a single-file model needs its config offline; pass --base-config DIR (a diffusers folder of the same architecture)")
    try:
        if not family.single_file_has_vae:  # the denoiser alone (BFL's FLUX.1 file): the rest from the folder
            return _denoiser_file_with_folder(family, path, Path(config), dtype, skip)
        return family.pipeline_class.from_single_file(
            str(path), config=str(config), dtype=dtype, local_files_only=True, **family.load_kwargs,
            **{k: v for k, v in skip.items() if k != "use_safetensors"},  # the file itself is checked above
        )
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: cannot load as a single-file {family.name} model ({str(e).splitlines()[0]})") from None


def _denoiser_file_with_folder(family, path: Path, config: Path, dtype: torch.dtype, skip: dict):
    """A single file that holds only the denoiser: it, then every other component from ``config``."""
    import diffusers

    index = json.loads((config / "model_index.json").read_text())
    denoiser_class = getattr(diffusers, index[family.denoiser_name][1])
    denoiser = denoiser_class.from_single_file(str(path), config=str(config), subfolder=family.denoiser_name,
                                               torch_dtype=dtype, local_files_only=True)
    return family.pipeline_class.from_pretrained(str(config), dtype=dtype, local_files_only=True,
                                                 **{family.denoiser_name: denoiser}, **family.load_kwargs, **skip)


def _load_hub(family, model_id: str, dtype: torch.dtype, skip: dict):
    try:
        return family.pipeline_class.from_pretrained(model_id, dtype=dtype, **family.load_kwargs, **skip)
    except Exception as e:  # noqa: BLE001 - hub errors come in many types
        raise UserError(
            f"base model '{model_id}': not a local path and could not be loaded from the hub "
            f"({type(e).__name__}); check the id, or download it and pass the local folder"
        ) from None


def load_base_pipeline(
    base: str | Path,
    dtype: torch.dtype = torch.float32,
    config: str | None = None,
    allow_pickle: bool = False,
    *,
    family,
    without: tuple[str, ...] = (),
    quantize: str | None = None,
):
    """Load a pipeline from a local folder, a single file or a hub id. ``family`` is the adapter
    class (``families.get_family(name)``): it names the pipeline class and its loading options.
    ``without``: components not to load at all (SD3's optional T5 and its tokenizer).
    ``quantize``: the denoiser in 4-bit NF4 (``"nf4"``, bitsandbytes, CUDA) or float8 weights (``"fp8"``,
    optimum-quanto); folders and hub ids."""
    _quiet_transformers()
    skip = dict.fromkeys(without)
    if not allow_pickle:
        skip["use_safetensors"] = True  # a component with only .bin / .pt weights is refused, never unpickled
    if quantize is not None:
        skip["quantization_config"] = quantization_config(quantize, family.denoiser_name, dtype)
    path = Path(base).expanduser()
    if path.is_dir():
        pipe = _load_folder(family, path, dtype, skip)
    elif path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
        pipe = _load_single_file(family, path, dtype, config, allow_pickle, skip)
    elif path.exists():
        raise UserError(f"{path}: not a model folder or a .safetensors file")
    elif str(base).startswith((".", "/", "~")) or os.sep in str(base) and str(base).count("/") > 1:
        raise UserError(f"base model not found: {base} (give a diffusers folder, a .safetensors file or a hub id)")
    else:
        pipe = _load_hub(family, str(base), dtype, skip)
    for component in pipe.components.values():  # diffusers' single-file loader leaves T5 in training
        if isinstance(component, torch.nn.Module):  # mode (dropout on); training turns on what it trains
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
