"""The run folder: what `dreamlock train` writes and `generate` / `evaluate` / `export` read.

Layout::

    RUN/
      run.json          RunInfo: method, family, base model, trigger, class word, tokens, step
      config.toml       the resolved training config
      final/
        pipeline/                          full fine-tune: a complete diffusers pipeline
        pytorch_lora_weights.safetensors   lora / pivotal: diffusers `save_lora_weights` format
        learned_embeds.safetensors         ti / pivotal: {token: [n_vectors, dim]} (diffusers TI format)
      checkpoints/checkpoint-<step>/       resumable training state
      samples/                             sample grids made while training
      logs/                                TensorBoard
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from dreamlock.atomic import write_text
from dreamlock.config import StrictModel
from dreamlock.errors import UserError

RUN_FILE = "run.json"
FINAL_DIR = "final"
PIPELINE_DIR = "pipeline"
LORA_FILE = "pytorch_lora_weights.safetensors"
EMBEDDINGS_FILE = "learned_embeds.safetensors"

#: what the methods of format_version 1 runs (written without ``produces``) left in final/
LEGACY_PRODUCTS = {"full": ["pipeline"], "lora": ["lora"], "ti": ["embeddings"], "pivotal": ["lora", "embeddings"]}


class RunInfo(StrictModel):
    """What a finished (or checkpointed) run produced, enough to load it back."""

    format_version: int = 1
    method: str
    produces: list[str] = []  # what final/ holds, as the method declared: pipeline, lora, embeddings
    family: str = "sd"
    base: str
    trigger: str | None = None
    class_word: str | None = None
    tokens: list[str] = []  # placeholder tokens learned by ti / pivotal
    step: int = 0
    resolution: int = 512
    scheduler: dict[str, bool | int | float | str] = {}  # noise-schedule settings the run trained with
    without: list[str] = []  # optional components the run trained (and samples) without: SD3's T5

    @property
    def products(self) -> list[str]:
        return self.produces or LEGACY_PRODUCTS.get(self.method, [])

    @property
    def has_pipeline(self) -> bool:
        return "pipeline" in self.products

    @property
    def has_lora(self) -> bool:
        return "lora" in self.products

    @property
    def has_embeddings(self) -> bool:
        return "embeddings" in self.products


def is_run(path: Path) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def read_run(run_dir: Path) -> RunInfo:
    """Read ``run.json``; a missing or broken file is a one-line UserError."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: not a dreamlock run (no {RUN_FILE}); give a folder made by `dreamlock train`")
    try:
        return RunInfo.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as e:
        raise UserError(f"{path}: unreadable run file ({str(e).splitlines()[0]}); re-run training or fix the file") from None


def write_run(run_dir: Path, info: RunInfo) -> None:
    path = Path(run_dir) / RUN_FILE
    write_text(path, json.dumps(info.model_dump(mode="json"), indent=2))


def final_dir(run_dir: Path) -> Path:
    return Path(run_dir) / FINAL_DIR
