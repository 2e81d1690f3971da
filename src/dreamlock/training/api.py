"""`dreamlock.train(...)`: validate, load, train, save. A thin recipe over small builders."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers.training_utils import cast_training_params

from dreamlock.config import dump_config, validate
from dreamlock.data.masks import mask_files
from dreamlock.errors import UserError
from dreamlock.families.base import ModelFamily
from dreamlock.families.objectives import ZERO_TERMINAL_SNR
from dreamlock.model_defaults import model_guidance
from dreamlock.progress import warn
from dreamlock.families import get_family
from dreamlock.methods import build_method, get_method
from dreamlock.runs import RunInfo, final_dir, write_run
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.config import TrainConfig
from dreamlock.training.buckets import bucket_step, image_meta, square_meta, training_sizes
from dreamlock.training.data import Bucket, PromptEncoder, TrainData, encode_set
from dreamlock.training.dataset import input_images, instance_examples, read_caption
from dreamlock.training.latent_cache import LatentCache
from dreamlock.training.loop import Trainer
from dreamlock.training.precision import choose_base_dtype, choose_precision, training_device_type
from dreamlock.training.prior import class_images
from dreamlock.training.selection import make_selector
from dreamlock.training.text_cache import cache_and_release
from dreamlock.training.timing import Phases
from dreamlock.training.validate import training_family, trigger_split_warning, validate_config


def make_accelerator(config: TrainConfig, run_dir: Path) -> Accelerator:
    device_type = training_device_type()
    precision = choose_precision(config.mixed_precision, device_type)
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state()  # one process, several runs (the Python API): each with its own precision
    return Accelerator(mixed_precision=precision, cpu=device_type == "cpu", log_with="tensorboard",
                       project_dir=str(run_dir / "logs"))


def build_data(config: TrainConfig, adapter, phase: Phases | None = None) -> TrainData:
    """Instance latents per training size (aspect-ratio buckets), each with the class images fitted
    to it; latents come from, and go to, the run's latent cache (``training/latent_cache.py``)."""
    phase = phase or Phases()
    examples = instance_examples(config.data, config.trigger, config.class_word, config.instance_prompt, config.use_captions)
    paths = [e.image for e in examples]
    step = bucket_step(adapter.size_multiple, config.resolution)
    sizes = training_sizes(paths, config.resolution, step, config.aspect_buckets)
    meta = image_meta(paths, Path(config.data))
    class_paths = None
    if config.with_prior_preservation and config.prior_mode == "class_images":
        with phase("class_images"):
            class_paths = class_images(
                adapter.sampling_pipeline, config.base, config.effective_class_prompt, config.num_class_images,
                config.resolution, config.class_data_dir, config.class_cache_dir, config.sample_batch_size,
                config.class_generation_steps, config.class_generation_guidance, config.seed,
            )
    inputs = condition_sources(adapter, paths)
    with phase("latents"):
        cache = LatentCache(Path(config.output), adapter)
        buckets = _encode_buckets(config, adapter, paths, [e.prompt for e in examples], sizes, meta, class_paths,
                                  inputs, cache)
        return TrainData(buckets, config.train_batch_size, config.seed, config.caption_dropout, config.condition_dropout)


def condition_sources(adapter, paths: list[Path]) -> list[Path] | None:
    """The image each instance image is conditioned on: its image before the edit (``image``:
    InstructPix2Pix), itself (``low_res``: an upscaler downscales it), or none."""
    if adapter.condition_kind == "image":
        return input_images(paths)
    return list(paths) if adapter.condition_kind == "low_res" else None


def _encode_buckets(config: TrainConfig, adapter, paths, prompts, sizes, meta, class_paths, inputs,
                    cache: LatentCache) -> list[Bucket]:
    """``inputs``: each instance image's image before the edit (image-editing families), else None."""
    masks = mask_files(paths) if config.masked_loss else None
    buckets = []
    for size in sorted(set(sizes), key=lambda s: (s != (config.resolution,) * 2, s)):  # the square one first
        chosen = [i for i, s in enumerate(sizes) if s == size]
        label = f"encoding instance images at {size[0]}x{size[1]}"
        instance = encode_set(adapter, [paths[i] for i in chosen], [prompts[i] for i in chosen], size,
                              config.random_flip, meta[chosen], label=label,
                              condition_paths=None if inputs is None else [inputs[i] for i in chosen], cache=cache,
                              mask_paths=[masks[i] for i in chosen] if masks else None,
                              mask_background=config.masked_loss_background)
        klass = None
        if class_paths is not None:
            klass = encode_set(adapter, class_paths, class_prompts(class_paths, config.effective_class_prompt), size,
                               config.random_flip, square_meta(len(class_paths), size), label="encoding class images",
                               cache=cache)
        buckets.append(Bucket(instance, klass))
    return buckets


def class_prompts(class_paths: list[Path], default: str) -> list[str]:
    """Each class image's prompt: its own ``.txt`` sidecar (class images of several scenes or poses,
    each with the prompt it was made from), else the class prompt."""
    return [read_caption(p) or default for p in class_paths]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def with_model_guidance(config: TrainConfig, adapter: ModelFamily) -> TrainConfig:
    """Unset guidance fields take the base model's recommendation (``dreamlock.json``), else its family's."""
    unset = [k for k in ("class_generation_guidance", "validation_guidance") if getattr(config, k) is None]
    if not unset:
        return config
    recommended = model_guidance(config.base)
    value = recommended if recommended is not None else adapter.default_guidance
    return config.model_copy(update={k: value for k in unset})


def scheduler_overrides(config: TrainConfig) -> dict:
    return dict(ZERO_TERMINAL_SNR) if config.zero_terminal_snr else {}


def load_adapter(config: TrainConfig) -> ModelFamily:
    """The base model through its family's adapter, with the run's noise-schedule settings."""
    family = get_family(training_family(config))
    dtype = choose_base_dtype(config.base_dtype, training_device_type(), "pipeline" in get_method(config.method).produces)
    adapter = family.load(config.base, config.base_config, config.allow_pickle, dtype=dtype,
                          without=dropped(config, family), quantize=config.quantize_base)
    if config.zero_terminal_snr:
        if adapter.objective.prediction_type != "v_prediction":
            raise UserError(f"zero_terminal_snr needs a v-prediction model (such as SD 2.x 768-v); {config.base} "
                            f"predicts {adapter.objective.prediction_type}; leave zero_terminal_snr off for it")
        adapter.set_scheduler(**scheduler_overrides(config))
    adapter.configure(config)
    return adapter


def apply_speed_levers(config: TrainConfig, adapter: ModelFamily) -> None:
    """Opt-in speed levers that measured a gain somewhere (channels-last and the fused AdamW did not:
    benchmarks/RESULTS.md)."""
    if config.compile_denoiser:
        adapter.denoiser.compile()


def dropped(config: TrainConfig, family) -> tuple[str, ...]:
    """Components the run leaves out: SD3's T5 with ``drop_t5``."""
    return family.optional_text_components() if config.drop_t5 else ()


def with_model_defaults(config: TrainConfig, adapter: ModelFamily) -> TrainConfig:
    """Keys that the base model decides: its family (as loaded), and an unset resolution (its native size)."""
    return config.model_copy(update={"family": adapter.name, "resolution": config.resolution or adapter.native_resolution})


def prepare_trainer(config: TrainConfig) -> Trainer:
    """Everything up to the first step: checks, model, method, data, optimizer (and resume)."""
    phase = Phases()
    validate_config(config)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed)
    with phase("load"):
        adapter = load_adapter(config)
    if (split := trigger_split_warning(config, adapter)) and not config.resume:
        warn(split)
    config = with_model_defaults(with_model_guidance(config, adapter), adapter)  # before config.toml records them
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.toml")
    accelerator = make_accelerator(config, run_dir)
    with phase("load"):
        adapter.to(accelerator.device)
    data = build_data(config, adapter, phase)
    with phase("method"):
        method = build_method(config.method, adapter, config)
        for module in method.trainable_modules():  # a half-precision base trains fp32 parameters
            cast_training_params(module, torch.float32)
        apply_speed_levers(config, adapter)
    with phase("text_embeddings"):
        prompts = PromptEncoder(adapter, cache=not method.trains_text_encoder)
        prompts.frozen = cache_and_release(prompts, data, method, config, run_dir)
    trainer = Trainer(config, adapter, method, data, prompts, run_dir, accelerator)
    trainer.startup = phase.seconds
    if config.select_best or config.early_stop_patience:
        trainer.selector = make_selector(trainer)
    if config.resume:
        trainer.resume(ckpt.find_checkpoint(run_dir, config.resume))
        if trainer.selector is not None:
            trainer.selector.load(trainer.step)
    accelerator.init_trackers("dreamlock")
    return trainer


def finish(trainer: Trainer) -> Path:
    """Save the final weights and run.json."""
    config = trainer.config
    if config.checkpointing_steps and trainer.step % config.checkpointing_steps:
        trainer.save_checkpoint()  # a run stopped by max_train_minutes stays resumable from where it stopped
    if trainer.selector is not None:
        choose_checkpoint(trainer)
    out = final_dir(trainer.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer.use_ema_weights()
    tokens = trainer.method.save_final(out)
    info = RunInfo(method=config.method, produces=list(trainer.method.produces), family=config.family, base=_base_ref(config.base), trigger=config.trigger,
                   class_word=config.class_word, tokens=tokens, step=trainer.step, resolution=config.resolution,
                   scheduler=scheduler_overrides(config),
                   without=list(dropped(config, get_family(config.family))))
    write_run(trainer.run_dir, info)
    trainer.accelerator.end_training()
    return trainer.run_dir


def choose_checkpoint(trainer: Trainer) -> None:
    """``select_best``: score the last step if it was not scored, then load the chosen checkpoint
    (weights, EMA and step), so that ``final/`` holds it."""
    selector, last = trainer.selector, trainer.step
    if not selector.has(last):
        selector.record(last)
    chosen = selector.chosen if trainer.config.select_best else last
    if chosen is not None and chosen != last:
        trainer.resume(ckpt.checkpoint_path(trainer.run_dir, chosen))
    selector.write(last_step=last, stopped_early=trainer.stopped_early, final_step=trainer.step)


def _base_ref(base: str) -> str:
    path = Path(base).expanduser()
    return str(path.resolve()) if path.exists() else base


def train(config: TrainConfig | dict | None = None, **overrides) -> Path:
    """Train a run and return its folder. ``config`` may be a TrainConfig or a dict of keys."""
    if not isinstance(config, TrainConfig):
        config = validate(TrainConfig, {**(config or {}), **overrides})
    elif overrides:
        config = validate(TrainConfig, {**config.model_dump(), **overrides})
    trainer = prepare_trainer(config)
    trainer.run()
    if trainer.config.validation_prompt and not trainer.config.validation_steps:
        trainer._sample()
    return finish(trainer)
