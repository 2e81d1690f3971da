"""``dreamlock export``: turn a run into files the rest of the ecosystem loads.

One module per format, found through ``FORMATS`` (name -> "module:function", the run products it
needs and the families it is written for). A run's products are what its method declared
(``Method.produces``), so a new method needs no change here. Every format writes into a scratch path
next to ``--out`` that is moved into place only when complete, so a failed export leaves nothing
half-written, and an existing ``--out`` is replaced only with ``overwrite=True``.

=====================  ======================  ==============================================
format                 run holds               writes
=====================  ======================  ==============================================
diffusers              anything                pipeline folder (LoRA fused, tokens added)
diffusers-lora         lora                    folder: pytorch_lora_weights.safetensors (+ embeddings)
kohya-lora             lora                    one .safetensors, kohya/A1111/ComfyUI keys
a1111-embedding        embeddings              .safetensors with ``emb_params`` (one per token)
diffusers-embedding    embeddings              learned_embeds.safetensors {token: tensor}
single-file            pipeline or lora,       one .safetensors in the original layout (LDM/A1111, SGM, MMDiT, BFL)
                       no embeddings
=====================  ======================  ==============================================
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
    """An export format and what it needs of a run: the products (``RunInfo.products``, as the
    run's method declared them) it can express, and the model families it is written for."""

    target: str  # "module:function", called with an ExportJob, returns the main path written
    needs: tuple[str, ...]  # the run must hold one of these products ("" = any run)
    lacks: str  # why a run without them does not fit, for the message
    uses_lora: bool  # --lora-scale means something
    families: tuple[str, ...] = ("sd", "sdxl", "sd3", "flux", "ip2p", "sd-upscale")  # model families it is written for
    excludes: tuple[str, ...] = ()  # products the format cannot carry

    def fits(self, products: list[str]) -> bool:
        return ((not self.needs or any(p in products for p in self.needs))
                and not any(p in products for p in self.excludes))


_NO_LORA, _NO_EMBEDDINGS = "it has no LoRA", "it has no embeddings"
FORMATS: dict[str, Format] = {
    "kohya-lora": Format("dreamlock.exporting.kohya:export_kohya_lora", ("lora",), _NO_LORA, True,
                         families=("sd", "sdxl", "sd3", "flux")),
    "diffusers-lora": Format("dreamlock.exporting.diffusers_formats:export_lora", ("lora",), _NO_LORA, True),
    "a1111-embedding": Format("dreamlock.exporting.embeddings:export_a1111_embedding", ("embeddings",), _NO_EMBEDDINGS,
                              False, families=("sd", "sdxl")),
    "diffusers-embedding": Format("dreamlock.exporting.embeddings:export_diffusers_embedding", ("embeddings",),
                                  _NO_EMBEDDINGS, False, families=("sd", "sdxl", "flux")),
    "diffusers": Format("dreamlock.exporting.diffusers_formats:export_pipeline", (), "", True),
    "single-file": Format("dreamlock.exporting.single_file:export_single_file", ("pipeline", "lora"),
                          "and a single-file checkpoint has no tokenizer to carry new tokens", True,
                          families=("sd", "sdxl", "sd3", "flux"), excludes=("embeddings",)),
}

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def fitting_formats(products: list[str], family: str) -> list[str]:
    return [name for name, f in FORMATS.items() if f.fits(products) and family in f.families]


def refusal(run_dir: Path, info, fmt: str) -> str:
    """The one-line reason a format does not fit a run, with the formats that do."""
    from dreamlock.methods import METHODS, get_method

    summary = get_method(info.method).summary if info.method in METHODS else f"is a {info.method} run"
    fits = fitting_formats(info.products, info.family)
    return f"run {run_dir} {summary}, {FORMATS[fmt].lacks}; use --format {', '.join(fits[:-1])} or {fits[-1]}"


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
    if not spec.fits(info.products):
        raise UserError(refusal(run_dir, info, format))
    if info.family not in spec.families:
        fits = fitting_formats(info.products, info.family)
        raise UserError(f"--format {format} is not written for {info.family} runs yet; "
                        f"use --format {' or '.join(fits)} for run {run_dir}")
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
    except OSError as e:
        from dreamlock.errors import WorkError

        raise WorkError(f"could not write {out_path}: {e.strerror or e}; the partial export was removed and "
                        f"{run_dir} is untouched; free space there (or choose another --out) and export again") from None
    finally:
        remove_path(scratch)
    return out_path if written == scratch else out_path / written.relative_to(scratch)


__all__ = ["export", "FORMATS", "DTYPES", "refusal"]
