"""`dreamlock generate`: images from a trained run (full, LoRA, TI, pivotal) or any model folder."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from PIL import Image
from dreamlock.progress import progress

from dreamlock.errors import UserError
from dreamlock.grid import make_grid
from dreamlock.families import family_of_pipeline
from dreamlock.pipelines import load_pipeline
from dreamlock.runs import RunInfo
from dreamlock.upscaling import Upscaler
from dreamlock.user_weights import add_embedding, add_lora


class Generator:
    """A loaded pipeline plus what the run knows: trigger, class word, learned tokens."""

    def __init__(self, pipe, info: RunInfo | None, source: str | Path | None = None):
        self.pipe = pipe
        self.info = info
        self.source = source  # the run or model folder (or file / hub id) it was loaded from
        pipe.scheduler = family_of_pipeline(pipe).sampling_scheduler(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)

    @property
    def trigger(self) -> str | None:
        return self.info.trigger if self.info else None

    @property
    def class_word(self) -> str | None:
        return self.info.class_word if self.info else None

    @property
    def default_guidance(self) -> float | None:
        """The guidance the model (a run: its base model) recommends, else its family's usual one."""
        from dreamlock.model_defaults import model_guidance

        recommended = model_guidance(self.info.base if self.info else self.source)
        return recommended if recommended is not None else family_of_pipeline(self.pipe).default_guidance

    @property
    def world(self) -> str | None:
        """The world the model (a run: its base model) draws: ``"toy"``, or None for a real model."""
        from dreamlock.model_defaults import model_world

        return model_world(self.info.base if self.info else self.source)

    def rewrite(self, prompt: str) -> str:
        """Fill {trigger}/{class_word}; for TI runs map the trigger word to the learned token."""
        prompt = prompt.replace("{trigger}", self.trigger or "").replace("{class_word}", self.class_word or "")
        if self.info and self.info.tokens and self.trigger:
            prompt = re.sub(rf"(?<![\w<]){re.escape(self.trigger)}(?![\w>])", self.info.tokens[0], prompt)
        return re.sub(r"\s+", " ", prompt).strip()

    @torch.no_grad()
    def images(self, prompt: str, seeds: list[int], steps: int = 30, guidance: float = 7.5,
               negative_prompt: str | None = None, batch_size: int = 8) -> list[Image.Image]:
        """One image per seed, in seed order (each seed gives the same image in any batch)."""
        family = family_of_pipeline(self.pipe)
        if family.condition_kind is not None:
            raise UserError(f"{self.source} is {family.usage}")
        out: list[Image.Image] = []
        text = self.rewrite(prompt)
        for start in range(0, len(seeds), batch_size):
            part = seeds[start:start + batch_size]
            gens = [torch.Generator().manual_seed(s) for s in part]
            neg = [negative_prompt] * len(part) if negative_prompt else None
            out += self.pipe([text] * len(part), negative_prompt=neg, num_inference_steps=steps,
                             guidance_scale=guidance, generator=gens).images
        return out


def load_generator(run_or_model: str | Path, lora_scale: float = 1.0, loras: list[str] = (),
                   embeddings: list[str] = (), allow_pickle: bool = False) -> Generator:
    """Load a run folder (or a model folder / file / hub id, or ``toy``) ready to generate, with the
    user's own LoRA and embedding files (``user_weights``) on top."""
    from dreamlock.runs import is_run
    from dreamlock.toyworld.paths import resolve_model

    source = run_or_model if is_run(Path(run_or_model)) else resolve_model(str(run_or_model))
    pipe, info = load_pipeline(source, lora_scale=lora_scale)
    add_user_weights(pipe, lora_scale, loras, embeddings, allow_pickle)
    fuse_adapters(pipe)
    return Generator(pipe, info, source)


def fuse_adapters(pipe) -> None:
    """Merge the active LoRA adapters (the run's and the user's, at the scales already set) into the
    weights: the same images, without the adapters' extra layers in every denoising step."""
    if getattr(pipe, "get_list_adapters", None) and any(pipe.get_list_adapters().values()):
        pipe.fuse_lora()


def load_conditioned(run_or_model: str | Path, kind: str, wanted: str) -> Generator:
    """A run or model whose family takes a ``kind`` condition (``image``: an editor, ``low_res``: an
    upscaler), else a one-line error saying what it is instead and ``wanted``."""
    generator = load_generator(run_or_model)
    family = family_of_pipeline(generator.pipe)
    if family.condition_kind != kind:
        raise UserError(f"{run_or_model} is a {family.name} model, not {wanted}")
    return generator


def load_upscaler(run_or_model: str | Path) -> Upscaler:
    """An upscaler (``upscaling.py``) from a run or a model, or a one-line error for anything else."""
    return Upscaler(load_conditioned(run_or_model, "low_res", "an upscaler; give a StableDiffusionUpscalePipeline "
                                     "or IFSuperResolutionPipeline model, or train one with `dreamlock train --method sr`"))


def add_user_weights(pipe, lora_scale: float, loras, embeddings, allow_pickle: bool) -> None:
    """Stack the given LoRA files (each at ``lora_scale``, beside a run's own) and load embeddings."""
    family = family_of_pipeline(pipe)
    for path in embeddings:
        add_embedding(pipe, family, path, allow_pickle=allow_pickle)
    if not loras:
        return
    for i, path in enumerate(loras):
        add_lora(pipe, family, path, f"user{i}", allow_pickle)
    names = sorted({name for names in pipe.get_list_adapters().values() for name in names})
    pipe.set_adapters(names, adapter_weights=[lora_scale] * len(names))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "prompt"


def generate(run_or_model: str | Path, prompts: list[str] | str, n: int = 4, seed: int = 0, steps: int = 30,
             guidance: float | None = None, lora_scale: float = 1.0, out: str | Path = "generated", grid: bool = False,
             negative_prompt: str | None = None, loras: list[str] = (), embeddings: list[str] = (),
             allow_pickle: bool = False, upscale: str | Path | None = None,
             upscale_guidance: float | None = None) -> list[Path]:
    """Generate ``n`` images per prompt (seeds ``seed``..``seed+n-1``); return the written files.

    ``guidance`` None: the model's recommendation (``dreamlock.json``), else 7.5. ``loras`` /
    ``embeddings``: the user's own files on top (embeddings' tokens: the file name, A1111-style).
    ``upscale``: an upscaler (``upscaling.py``) that redraws every image, same prompt and seed, at
    ``upscale_guidance`` (None: the upscaler's recommendation, else its family's default)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(p.strip() for p in prompts):
        raise UserError("--prompt is empty; give at least one prompt, e.g. --prompt 'a photo of sks dog on the beach'")
    if n < 1 or steps < 1:
        raise UserError("-n and --steps must be at least 1")
    generator = load_generator(run_or_model, lora_scale, loras, embeddings, allow_pickle)
    upscaler = load_upscaler(upscale) if upscale is not None else None
    if upscaler is not None and upscale_guidance is not None:
        upscaler.guidance = upscale_guidance
    if guidance is None:
        recommended = generator.default_guidance
        guidance = recommended if recommended is not None else 7.5
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seeds = list(range(seed, seed + n))
    with progress("generating", len(prompts) * n) as bar:
        for i, prompt in enumerate(prompts):
            images = generator.images(prompt, seeds, steps, guidance, negative_prompt)
            if upscaler is not None:
                images = upscaler.upscale(images, generator.rewrite(prompt), seeds, steps)
            for s, image in zip(seeds, images):
                path = out / f"{i:02d}-{_slug(generator.rewrite(prompt))}-seed{s}.png"
                image.save(path)
                written.append(path)
            if grid:
                path = out / f"{i:02d}-{_slug(generator.rewrite(prompt))}-grid.png"
                make_grid(images).save(path)
                written.append(path)
            bar.advance(n)
    return written
