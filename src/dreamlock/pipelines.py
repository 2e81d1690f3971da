"""Turn a run folder (or any model) into a ready pipeline: base + LoRA + learned embeddings."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from dreamlock.loading import load_base_pipeline
from dreamlock.runs import EMBEDDINGS_FILE, LORA_FILE, PIPELINE_DIR, RunInfo, final_dir, is_run, read_run


def add_embeddings(pipe: StableDiffusionPipeline, path: Path) -> list[str]:
    """Load ``{token: [n, dim]}`` embeddings into the pipeline's tokenizer and text encoder."""
    state = load_file(str(path))
    for token, tensor in state.items():
        vectors = tensor if tensor.ndim == 2 else tensor[None]
        pipe.load_textual_inversion({token: vectors}, token=token)
    return list(state)


def load_run_pipeline(
    run_dir: Path,
    lora_scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[StableDiffusionPipeline, RunInfo]:
    """Load a run's result: the fine-tuned pipeline, or the base with LoRA / embeddings applied."""
    info = read_run(run_dir)
    final = final_dir(run_dir)
    if info.method == "full":
        pipe = load_base_pipeline(final / PIPELINE_DIR, dtype)
    else:
        pipe = load_base_pipeline(info.base, dtype)
    if info.has_embeddings:
        add_embeddings(pipe, final / EMBEDDINGS_FILE)
    if info.has_lora:
        pipe.load_lora_weights(str(final), weight_name=LORA_FILE, adapter_name="dreamlock")
        pipe.set_adapters(["dreamlock"], adapter_weights=[lora_scale])
    return pipe, info


def load_pipeline(run_or_model: str | Path, lora_scale: float = 1.0,
                  dtype: torch.dtype = torch.float32) -> tuple[StableDiffusionPipeline, RunInfo | None]:
    """A run folder gives its trained pipeline; anything else is loaded as a base model."""
    if is_run(Path(run_or_model)):
        return load_run_pipeline(Path(run_or_model), lora_scale, dtype)
    return load_base_pipeline(run_or_model, dtype), None
