"""Turn a run folder (or any model) into a ready pipeline: base + LoRA + learned embeddings.

The one reader of a run folder for `generate`, `evaluate` and `export`: the family comes from
``run.json`` and every family-specific step goes through its adapter.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dreamlock.families import detect_family, get_family
from dreamlock.runs import EMBEDDINGS_FILE, LORA_FILE, PIPELINE_DIR, RunInfo, final_dir, is_run, read_run


def load_run_pipeline(run_dir: Path, lora_scale: float = 1.0, dtype: torch.dtype = torch.float32,
                      with_lora: bool = True):
    """Load a run's result: the fine-tuned pipeline, or the base with LoRA / embeddings applied
    (``with_lora=False``: without the LoRA, for `export`, which fuses it into the weights itself)."""
    info = read_run(run_dir)
    family = get_family(info.family)
    final = final_dir(run_dir)
    pipe = family.load_pipeline(final / PIPELINE_DIR if info.has_pipeline else info.base, dtype=dtype,
                                without=tuple(info.without))
    if info.scheduler:  # e.g. zero terminal SNR: the run samples with the schedule it trained with
        family.reschedule(pipe, **info.scheduler)
    if info.has_embeddings:
        family.add_embeddings(pipe, final / EMBEDDINGS_FILE, info.tokens)
    if info.has_lora and with_lora:
        pipe.load_lora_weights(str(final), weight_name=LORA_FILE, adapter_name="dreamlock")
        pipe.set_adapters(["dreamlock"], adapter_weights=[lora_scale])
    return pipe, info


def load_pipeline(run_or_model: str | Path, lora_scale: float = 1.0,
                  dtype: torch.dtype = torch.float32) -> tuple[object, RunInfo | None]:
    """A run folder gives its trained pipeline; anything else is loaded as a base model of its
    detected family (``generation.load_generator`` has turned ``toy`` into the toy base's folder)."""
    if is_run(Path(run_or_model)):
        return load_run_pipeline(Path(run_or_model), lora_scale, dtype)
    return get_family(detect_family(run_or_model)).load_pipeline(run_or_model, dtype=dtype), None
