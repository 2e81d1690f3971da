"""Checks run before anything heavy is loaded: each problem is one line naming the file or key."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dreamlock.errors import UserError
from dreamlock.families import detect_family, get_family
from dreamlock.methods import METHODS, get_method
from dreamlock.training.config import TrainConfig
from dreamlock.training.dataset import INPUT_DIR, find_images, input_images, read_caption
from dreamlock.data.masks import check_masks
from dreamlock.runs import is_run
from dreamlock.training import checkpoint as ckpt


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def check_data(config: TrainConfig, pairs: bool = False) -> list[Path]:
    """The instance images; ``pairs`` (image-editing families): each with its instruction and its
    image before the edit."""
    data = Path(config.data)
    if not data.is_dir():
        raise UserError(f"data folder not found: {data} (run `dreamlock prepare SRC {data}` first, or fix --data)")
    images = find_images(data)
    if not images:
        raise UserError(f"{data}: no images (.png/.jpg/.webp...); run `dreamlock prepare` into this folder")
    if pairs:
        return check_pairs(images)
    if config.trigger and config.use_captions:
        for image in images:
            caption = read_caption(image)
            if caption is not None and "{trigger}" not in caption and not _has_word(caption, config.trigger):
                raise UserError(
                    f"{image.with_suffix('.txt')}: caption lacks the trigger word '{config.trigger}'; "
                    f"add it, or run `dreamlock caption {data} --trigger {config.trigger} --overwrite`"
                )
    return images


def check_pairs(images: list[Path]) -> list[Path]:
    """Editing data: every edited image has an instruction (its .txt) and an image before the edit."""
    for image, before in zip(images, input_images(images)):
        if before is None:
            raise UserError(f"{image}: no image before the edit; put it in {image.parent / INPUT_DIR} under the same "
                            f"name ({image.stem}.png)")
        if read_caption(image) is None:
            raise UserError(f"{image.with_suffix('.txt')}: missing; write the edit's instruction in it "
                            "(e.g. 'put it on the beach')")
    return images


def check_paths(config: TrainConfig) -> None:
    if config.class_data_dir is not None and not Path(config.class_data_dir).is_dir():
        raise UserError(f"class_data_dir not found: {config.class_data_dir}; give a folder of class images or leave it out")
    output = Path(config.output)
    if config.resume is None and (is_run(output) or ckpt.checkpoint_dirs(output)):  # not a run killed before its first
        raise UserError(f"{output}: already holds a run; pass --resume latest to continue it, or choose another --output")
    if output.resolve() == Path(config.data).resolve():
        raise UserError(f"--output {output} is the data folder; choose a separate run folder")
    check_writable(output)
    if config.resume is not None:
        check_resume(output, config.resume)
    base = Path(config.base).expanduser()
    if str(config.base).startswith((".", "/", "~")) and not base.exists():
        raise UserError(f"base model not found: {config.base} (give a diffusers folder, a .safetensors file or a hub id)")


def check_writable(output: Path) -> None:
    """The run folder can be made and written: its nearest existing parent is a writable folder."""
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--output {output}: {existing} is a file, not a folder; choose another --output")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--output {output}: {existing} is not writable; choose a folder you can write to")


def check_resume(output: Path, resume: str) -> None:
    """``--resume`` names this run's own checkpoint (``latest`` or one of ``OUTPUT/checkpoints``)."""
    path = ckpt.find_checkpoint(output, resume)
    own = (output / ckpt.CHECKPOINTS).resolve()
    if path.resolve().parent != own:
        run = path.resolve().parent.parent
        raise UserError(f"--resume {resume}: a checkpoint of another run ({run}); resume a run in its own folder "
                        f"(--output {run} --resume latest), or start this one without --resume")


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


def training_family(config: TrainConfig) -> str:
    """The family a run trains: one of the method's own (ip2p, sr) that the base model is or converts
    to, else ``--family``, else the base model's."""
    method = get_method(config.method)
    if not method.families:
        return config.family or detect_family(config.base, config.base_config)
    if config.family not in (None, *method.families):
        raise UserError(f"method {config.method} trains {' or '.join(method.families)} models; leave --family out")
    detected = detect_family(config.base, config.base_config)
    wanted = (config.family,) if config.family else method.families
    for family in wanted:
        if detected == family or detected in get_family(family).converts_from:
            return family
    starts = [f for family in wanted for f in (family, *get_family(family).converts_from)]
    raise UserError(f"method {config.method} {method.summary}: it starts from a {' or '.join(starts)} model, "
                    f"and {config.base} is a {detected} model")


def check_family(config: TrainConfig) -> None:
    """Keys and methods against the base model's family (read from its ``model_index.json``)."""
    name = training_family(config)
    family = get_family(name)
    if family.condition_kind is not None:
        check_image_conditioned(config, name)
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


def check_image_conditioned(config: TrainConfig, name: str) -> None:
    """What image-editing models (ip2p) cannot do yet: everything that generates from a prompt alone."""
    used = [key for key, on in (("with_prior_preservation", config.with_prior_preservation),
                                ("select_best", config.select_best or config.early_stop_patience),
                                ("validation_prompt", config.validation_prompt)) if on]
    if used:
        raise UserError(f"{used[0]} generates from a prompt alone, which a {name} (image-editing) model cannot; "
                        f"leave {used[0]} out (try edits with `dreamlock edit RUN IMAGE --instruction ...`)")


#: quantize_base -> (module to import, pip package); and what it keeps the base in
QUANT_PACKAGE = {"nf4": ("bitsandbytes", "bitsandbytes"), "fp8": ("optimum.quanto", "optimum-quanto")}
QUANT_BITS = {"nf4": "4 bits", "fp8": "8-bit floats"}


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported (``optimum.quanto`` without ``optimum``: False, not an error)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def check_memory_options(config: TrainConfig) -> None:
    """Precision and quantization keys against the method and the machine."""
    import torch

    if config.base_dtype in ("bf16", "fp16") and config.mixed_precision == "no":
        raise UserError(f"base_dtype='{config.base_dtype}' computes under autocast; set mixed_precision to 'auto' or "
                        f"'{config.base_dtype}', or base_dtype='fp32'")
    if config.quantize_base is None:
        return
    kind = config.quantize_base
    if "pipeline" in get_method(config.method).produces:
        raise UserError(f"quantize_base keeps the base frozen in {QUANT_BITS[kind]}, and method {config.method} trains its "
                        "weights; use --method lora (QLoRA) or leave quantize_base out")
    if kind == "nf4" and not torch.cuda.is_available():
        raise UserError("quantize_base='nf4' needs a CUDA GPU (diffusers' bitsandbytes loader); on this machine use "
                        "quantize_base='fp8', or leave it (and memory_preset) out")
    if not _importable(QUANT_PACKAGE[kind][0]):
        raise UserError(f"quantize_base='{kind}' needs {QUANT_PACKAGE[kind][1]}: pip install {QUANT_PACKAGE[kind][1]}")
    if Path(config.base).suffix in (".safetensors", ".ckpt"):
        raise UserError(f"quantize_base loads diffusers folders or hub ids; convert {config.base} to a folder first "
                        "(dreamlock export --format diffusers)")


def validate_config(config: TrainConfig) -> list[Path]:
    """All cheap checks; returns the instance images."""
    check_method(config)
    check_family(config)
    check_memory_options(config)
    check_paths(config)
    images = check_data(config, pairs=get_family(training_family(config)).condition_kind == "image")
    if config.masked_loss:
        check_masks(images)
    return images


#: a trigger that the tokenizer cuts into more pieces than this is worth a warning
TRIGGER_TOKENS_WARN = 2


def trigger_split_warning(config: TrainConfig, adapter) -> str | None:
    """A trigger word the (first) tokenizer splits into many tokens locks slowly and leaks into its
    pieces' meanings; say so, and name a one-token alternative (methods that learn the token are exempt)."""
    if not config.trigger or get_method(config.method).learns_token or adapter.condition_kind is not None:
        return None
    text = adapter.text_encoders()[0]
    pieces = text.tokenizer.tokenize(config.trigger)
    if len(pieces) <= TRIGGER_TOKENS_WARN:
        return None
    shown = " ".join(p.replace("</w>", "") for p in pieces)
    return (f"trigger '{config.trigger}' splits into {len(pieces)} tokens ({shown}) in the {text.name} tokenizer; "
            "a short rare word that is one token (such as 'sks') locks faster; set --trigger to change it")
