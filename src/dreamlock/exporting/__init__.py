"""``dreamlock export``: turn a run into files the rest of the ecosystem loads.

One module per format, found through ``FORMATS`` (name -> "module:function" and the run methods it
fits). Every format writes into a scratch path next to ``--out`` that is moved into place only when
complete, so a failed export leaves nothing half-written, and an existing ``--out`` is replaced only
with ``overwrite=True``.

=====================  ==================  ==================================================
format                 run methods         writes
=====================  ==================  ==================================================
diffusers              all                 pipeline folder (LoRA fused, tokens added)
diffusers-lora         lora, pivotal       folder: pytorch_lora_weights.safetensors (+ embeddings)
kohya-lora             lora, pivotal       one .safetensors, kohya/A1111/ComfyUI keys
a1111-embedding        ti, pivotal         .safetensors with ``emb_params`` (one per token)
diffusers-embedding    ti, pivotal         learned_embeds.safetensors {token: tensor}
single-file            full, lora          one .safetensors in the LDM/A1111 layout
=====================  ==================  ==================================================
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from dreamlock.errors import UserError
from dreamlock.runs import FINAL_DIR, read_run


@dataclass(frozen=True)
class Format:
    target: str  # "module:function", called with an ExportJob, returns the main path written
    methods: tuple[str, ...]  # run methods this format can express
    uses_lora: bool  # --lora-scale means something


FORMATS: dict[str, Format] = {
    "diffusers": Format("dreamlock.exporting.diffusers_formats:export_pipeline", ("full", "lora", "ti", "pivotal"), True),
    "diffusers-lora": Format("dreamlock.exporting.diffusers_formats:export_lora", ("lora", "pivotal"), True),
    "kohya-lora": Format("dreamlock.exporting.kohya:export_kohya_lora", ("lora", "pivotal"), True),
    "a1111-embedding": Format("dreamlock.exporting.embeddings:export_a1111_embedding", ("ti", "pivotal"), False),
    "diffusers-embedding": Format("dreamlock.exporting.embeddings:export_diffusers_embedding", ("ti", "pivotal"), False),
    "single-file": Format("dreamlock.exporting.single_file:export_single_file", ("full", "lora"), True),
}

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

_METHOD_WORDS = {
    "full": "is a full fine-tune",
    "lora": "trained a LoRA",
    "ti": "learned embeddings only (textual inversion)",
    "pivotal": "trained a LoRA and new tokens (pivotal tuning)",
}
_SUGGEST = {
    "full": "diffusers or single-file",
    "lora": "kohya-lora or diffusers-lora (or diffusers / single-file for a merged model)",
    "ti": "a1111-embedding or diffusers-embedding (or diffusers)",
    "pivotal": "kohya-lora (LoRA + bundled embeddings), diffusers-lora or diffusers",
}
_LACKS = {
    "diffusers-lora": "it has no LoRA",
    "kohya-lora": "it has no LoRA",
    "a1111-embedding": "it has no embeddings",
    "diffusers-embedding": "it has no embeddings",
    "single-file": "and a single-file checkpoint has no tokenizer to carry new tokens",
}


def refusal(run_dir: Path, method: str, fmt: str) -> str:
    """The one-line reason a format does not fit a run, with the formats that do."""
    return f"run {run_dir} {_METHOD_WORDS[method]}, {_LACKS[fmt]}; use --format {_SUGGEST[method]}"


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_out(out: Path, run_dir: Path, base: str, overwrite: bool) -> None:
    run_dir = run_dir.resolve()
    protected = [run_dir / FINAL_DIR]
    if Path(base).expanduser().exists():
        protected.append(Path(base).expanduser().resolve())
    for p in protected:
        if _overlaps(out, p):
            raise UserError(f"--out {out} overlaps {p}, which this export reads; choose another --out")
    if out in run_dir.parents or out == run_dir:
        raise UserError(f"--out {out} would replace the run folder itself; choose another --out")
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    if out.is_dir() and any(out.iterdir()):
        looks_exported = (out / "model_index.json").is_file() or any(out.glob("*.safetensors"))
        if not looks_exported:
            raise UserError(f"{out} is a folder that does not look like an export (no model_index.json or "
                            ".safetensors inside); refusing to replace it even with --overwrite")


def export(
    run: str | Path,
    format: str,
    out: str | Path,
    dtype: str = "fp32",
    lora_scale: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Export a finished run to ``format`` at ``out``; returns the main path written.

    ``dtype``: fp32 | fp16 | bf16 (the LoRA/fusion arithmetic is done in fp32 first).
    ``lora_scale``: LoRA strength baked into the export (fused weights, or scaled LoRA ``up`` tensors).
    Raises ``UserError`` (exit 2) for a wrong format, dtype, run or ``out``; ``WorkError`` (exit 1)
    when the weights cannot be written in the format.
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format '{format}'; choose one of: {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype '{dtype}'; choose one of: {', '.join(DTYPES)}")
    if not isinstance(lora_scale, (int, float)) or not math.isfinite(lora_scale):
        raise UserError(f"--lora-scale must be a finite number, got {lora_scale!r}")
    spec = FORMATS[format]
    run_dir = Path(run).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir} (give a folder made by `dreamlock train`)")
    info = read_run(run_dir)
    if info.method not in spec.methods:
        raise UserError(refusal(run_dir, info.method, format))
    if lora_scale != 1.0 and not (spec.uses_lora and info.has_lora):
        raise UserError(f"--lora-scale applies to LoRA exports only; run {run_dir} with --format {format} has no LoRA to scale")
    out_path = Path(out).expanduser().resolve()
    _check_out(out_path, run_dir, info.base, overwrite)

    import torch

    from dreamlock.exporting.common import ExportJob, remove_path

    out_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_path.parent / f".{out_path.name}.dreamlock-{os.getpid()}.tmp"
    remove_path(scratch)
    job = ExportJob(run_dir, info, scratch, out_path, getattr(torch, DTYPES[dtype]), dtype, float(lora_scale))
    module, attr = spec.target.split(":")
    try:
        written = Path(getattr(importlib.import_module(module), attr)(job))
        if out_path.exists() or out_path.is_symlink():
            remove_path(out_path)  # overwrite was allowed by _check_out
        scratch.replace(out_path)
    finally:
        remove_path(scratch)
    return out_path if written == scratch else out_path / written.relative_to(scratch)


__all__ = ["export", "FORMATS", "DTYPES", "refusal"]
