"""Checks run before anything heavy is loaded: each problem is one line naming the file or key."""

from __future__ import annotations

import re
from pathlib import Path

from dreamlock.errors import UserError
from dreamlock.methods import METHODS, get_method
from dreamlock.training.config import TrainConfig
from dreamlock.training.dataset import find_images, read_caption
from dreamlock.runs import is_run


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def check_data(config: TrainConfig) -> list[Path]:
    data = Path(config.data)
    if not data.is_dir():
        raise UserError(f"data folder not found: {data} (run `dreamlock prepare SRC {data}` first, or fix --data)")
    images = find_images(data)
    if not images:
        raise UserError(f"{data}: no images (.png/.jpg/.webp...); run `dreamlock prepare` into this folder")
    if config.trigger and config.use_captions:
        for image in images:
            caption = read_caption(image)
            if caption is not None and "{trigger}" not in caption and not _has_word(caption, config.trigger):
                raise UserError(
                    f"{image.with_suffix('.txt')}: caption lacks the trigger word '{config.trigger}'; "
                    f"add it, or run `dreamlock caption {data} --trigger {config.trigger} --overwrite`"
                )
    return images


def check_paths(config: TrainConfig) -> None:
    if config.class_data_dir is not None and not Path(config.class_data_dir).is_dir():
        raise UserError(f"class_data_dir not found: {config.class_data_dir}; give a folder of class images or leave it out")
    output = Path(config.output)
    if config.resume is None and (is_run(output) or (output / "checkpoints").is_dir()):
        raise UserError(f"{output}: already holds a run; pass --resume latest to continue it, or choose another --output")
    if output.resolve() == Path(config.data).resolve():
        raise UserError(f"--output {output} is the data folder; choose a separate run folder")
    base = Path(config.base).expanduser()
    if str(config.base).startswith((".", "/", "~")) and not base.exists():
        raise UserError(f"base model not found: {config.base} (give a diffusers folder, a .safetensors file or a hub id)")


def check_method(config: TrainConfig) -> None:
    """What the chosen method declares it fits (methods/<name>.py), checked against the keys."""
    if config.method not in METHODS:
        raise UserError(f"unknown method '{config.method}'; choose one of: {', '.join(METHODS)}")
    method = get_method(config.method)
    if config.with_prior_preservation and not method.prior_modes:
        raise UserError(f"method {config.method} {method.summary}: prior preservation does not apply "
                        "(use --no-prior-preservation)")
    if config.with_prior_preservation and config.prior_mode not in method.prior_modes:
        why = " needs a LoRA (the base model is the adapter switched off)" if config.prior_mode == "prior_prediction" else " does not fit"
        raise UserError(f"prior_mode='{config.prior_mode}'{why}; method {config.method} offers "
                        f"{', '.join(method.prior_modes)}")
    if method.learns_token and not config.trigger:
        raise UserError(f"method {config.method} learns the trigger token; set --trigger")
    if config.use_ema and not method.supports_ema:
        ema = [name for name in METHODS if get_method(name).supports_ema]
        raise UserError(f"use_ema is for method {' / '.join(ema)}, not {config.method}")


def check_family(config: TrainConfig) -> None:
    """Keys and methods against the base model's family (read from its ``model_index.json``)."""
    from dreamlock.families import detect_family, get_family

    name = config.family or detect_family(config.base, config.base_config)
    family = get_family(name)
    if get_method(config.method).learns_token and not family.learns_tokens():
        raise UserError(f"method {config.method} learns a token, and diffusers' {family.pipeline_class.__name__} "
                        f"cannot load learned tokens; use --method lora or full for {name} models")
    flow = family.objective_kind == "flow"
    if flow and config.snr_gamma:
        raise UserError(f"snr_gamma is for DDPM models; {name} trains by flow matching: use weighting_scheme instead")
    if not flow and config.weighting_scheme is not None:
        raise UserError(f"weighting_scheme is for flow-matching models (SD3, FLUX.1); {name} trains by DDPM: "
                        "leave it out (snr_gamma weights DDPM losses)")
    if config.drop_t5 and not family.optional_text_components():
        raise UserError(f"drop_t5 is for SD3, whose T5 is optional; {name} models need all their text encoders: "
                        "leave drop_t5 out")
    if config.guidance_scale is not None and not family.trains_with_guidance:
        raise UserError(f"guidance_scale is the distilled guidance of FLUX.1-dev; {name} models have none: leave it out "
                        "(validation_guidance sets the sampling guidance)")


def check_memory_options(config: TrainConfig) -> None:
    """Precision and quantization keys against the method and the machine."""
    import importlib.util

    import torch

    if config.base_dtype in ("bf16", "fp16") and config.mixed_precision == "no":
        raise UserError(f"base_dtype='{config.base_dtype}' computes under autocast; set mixed_precision to 'auto' or "
                        f"'{config.base_dtype}', or base_dtype='fp32'")
    if config.quantize_base is None:
        return
    if "pipeline" in get_method(config.method).produces:
        raise UserError(f"quantize_base keeps the base frozen in 4 bits, and method {config.method} trains its weights; "
                        "use --method lora (QLoRA) or leave quantize_base out")
    if not torch.cuda.is_available():
        raise UserError("quantize_base='nf4' needs a CUDA GPU (bitsandbytes); leave it (and memory_preset) out on this machine")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("quantize_base='nf4' needs bitsandbytes: pip install bitsandbytes")
    if Path(config.base).suffix in (".safetensors", ".ckpt"):
        raise UserError(f"quantize_base loads diffusers folders or hub ids; convert {config.base} to a folder first "
                        "(dreamlock export --format diffusers)")


def validate_config(config: TrainConfig) -> list[Path]:
    """All cheap checks; returns the instance images."""
    check_method(config)
    check_family(config)
    check_memory_options(config)
    check_paths(config)
    return check_data(config)
