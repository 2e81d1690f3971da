"""Tiny runs for the export tests, made without the trainer.

Every model here is a tiny randomly initialised SD-architecture pipeline built offline
(``dreamlock.families.build``): these tests prove plumbing — key names, shapes, alpha, dtype, that
diffusers' own loaders read our files back and give the same numbers — not image quality.

Runs (session-scoped, built once):
  base        tiny pipeline folder (the base model of every run)
  lora        UNet + text-encoder LoRA, r=4, lora_alpha=8 (alpha != r so alpha matters), random
              init_lora_weights=False (so the LoRA visibly changes the output); peft metadata saved
  lora_nometa UNet-only LoRA saved without adapter metadata; alpha only in config.toml
  lora_wide   UNet-only LoRA on WIDE_UNET_TARGETS (convs, feed-forward, time embedding...)
  lora_pattern UNet-only LoRA with per-layer rank and alpha (peft rank_pattern / alpha_pattern)
  ti          one new token ``<dlk>`` with a random [2, dim] embedding
  pivotal     LoRA as ``lora`` plus token ``<pvt>`` [2, dim]
  full        base with perturbed UNet/text-encoder weights saved as final/pipeline
  full3       same on a 3-level UNet with layers_per_block=2 (and a 3-level VAE)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np
import pytest
import torch

from export_helpers import (  # noqa: E402
    ALPHA, PATTERNS, PROMPT, RANK, TE_TARGETS, UNET_TARGETS, WIDE_UNET_TARGETS, image, load_pipe,
)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on shared cores torch's spinning OpenMP workers
    make every op ~100x slower (4 s instead of 0.03 s per 2-step image, measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _quiet_progress():
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    yield


@dataclass
class Runs:
    base: Path
    base3: Path
    lora: Path
    lora_nometa: Path
    lora_wide: Path
    lora_pattern: Path
    ti: Path
    pivotal: Path
    full: Path
    full3: Path


def _write_run(run: Path, method: str, base: Path, tokens=(), config: str = "") -> None:
    from dreamlock.runs import RunInfo, write_run

    (run / "final").mkdir(parents=True)
    write_run(run, RunInfo(method=method, base=str(base), trigger=tokens[0] if tokens else "sks",
                           class_word="dog", tokens=list(tokens), step=10, resolution=32))
    if config:
        (run / "config.toml").write_text(config)


def _save_lora(run: Path, base: Path, text_encoder: bool, metadata: bool, seed: int, unet_targets=UNET_TARGETS,
               **unet_config) -> None:
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    pipe = load_pipe(base)
    ucfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False, target_modules=unet_targets, **unet_config)
    pipe.unet.add_adapter(ucfg)
    kwargs = {"unet_lora_layers": get_peft_model_state_dict(pipe.unet)}
    if metadata:
        kwargs["unet_lora_adapter_metadata"] = ucfg.to_dict()
    if text_encoder:
        tcfg = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False, target_modules=TE_TARGETS)
        # peft directly, as training does (methods.lora.add_lora): transformers 5.24+ gate add_adapter on an unreleased peft
        inject_adapter_in_model(tcfg, pipe.text_encoder)
        kwargs["text_encoder_lora_layers"] = get_peft_model_state_dict(pipe.text_encoder)
        if metadata:
            kwargs["text_encoder_lora_adapter_metadata"] = tcfg.to_dict()
    StableDiffusionPipeline.save_lora_weights(str(run / "final"), safe_serialization=True, **kwargs)


def _save_embeddings(run: Path, tokens: list[str], dim: int, seed: int) -> None:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    save_file({t: torch.randn(2, dim, generator=g) for t in tokens}, str(run / "final" / "learned_embeds.safetensors"))


def _save_full(run: Path, base: Path, seed: int) -> None:
    torch.manual_seed(seed)
    pipe = load_pipe(base)
    with torch.no_grad():
        for module in (pipe.unet, pipe.text_encoder):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    pipe.save_pretrained(str(run / "final" / "pipeline"), safe_serialization=True)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    from dreamlock.families.build import SDArch, save_tiny_pipeline

    root = tmp_path_factory.mktemp("export-runs")
    base = save_tiny_pipeline(root / "base")
    arch3 = SDArch(unet_channels=[16, 32, 32], cross_attention=[False, True, True], layers_per_block=2,
                   vae_channels=[8, 16, 16])
    base3 = save_tiny_pipeline(root / "base3", arch3)
    dim = SDArch().text_hidden
    cfg = f"method = 'lora'\nrank = {RANK}\nlora_alpha = {ALPHA}\n"

    r = Runs(base, base3, *(root / n for n in ("lora", "lora_nometa", "lora_wide", "lora_pattern", "ti", "pivotal", "full", "full3")))
    _write_run(r.lora, "lora", base, config=cfg)
    _save_lora(r.lora, base, text_encoder=True, metadata=True, seed=1)
    _write_run(r.lora_nometa, "lora", base, config=f"[lora]\nrank = {RANK}\nlora_alpha = {ALPHA}\n")
    _save_lora(r.lora_nometa, base, text_encoder=False, metadata=False, seed=2)
    _write_run(r.lora_wide, "lora", base, config=cfg)
    _save_lora(r.lora_wide, base, text_encoder=False, metadata=True, seed=8, unet_targets=WIDE_UNET_TARGETS)
    _write_run(r.lora_pattern, "lora", base, config=cfg)
    _save_lora(r.lora_pattern, base, text_encoder=False, metadata=True, seed=9, **PATTERNS)
    _write_run(r.ti, "ti", base, tokens=["<dlk>"])
    _save_embeddings(r.ti, ["<dlk>"], dim, seed=3)
    _write_run(r.pivotal, "pivotal", base, tokens=["<pvt>"], config=cfg)
    _save_lora(r.pivotal, base, text_encoder=True, metadata=True, seed=4)
    _save_embeddings(r.pivotal, ["<pvt>"], dim, seed=5)
    _write_run(r.full, "full", base)
    _save_full(r.full, base, seed=6)
    _write_run(r.full3, "full", base3)
    _save_full(r.full3, base3, seed=7)
    return r


@pytest.fixture(scope="session")
def base_image(runs) -> np.ndarray:
    return image(load_pipe(runs.base))


@pytest.fixture(scope="session")
def lora_reference_image(runs) -> np.ndarray:
    """base + the run's own diffusers-format LoRA file, loaded by diffusers (UNet and text encoder)."""
    pipe = load_pipe(runs.base)
    pipe.load_lora_weights(str(runs.lora / "final"))
    return image(pipe)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return tmp_path
