"""`dreamlock export RUN --format ... --out PATH`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import checkpoint as _checkpoint, console, run_api

_FORMATS_HELP = (
    "diffusers (pipeline folder) | diffusers-lora (folder for load_lora_weights) | "
    "kohya-lora (.safetensors for A1111/Forge/ComfyUI) | a1111-embedding | diffusers-embedding | "
    "single-file (LDM/A1111 checkpoint .safetensors)"
)


@app.command("export", help="Export a trained run to diffusers, kohya/A1111, embedding or single-file formats.")
def export_command(
    run: Path = typer.Argument(..., help="a run folder made by `dreamlock train`"),
    fmt: str = typer.Option(..., "--format", "-f", help=_FORMATS_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="file (.safetensors) or folder to write"),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32 | fp16 | bf16"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out"),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="LoRA strength baked into the export"),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="use checkpoint STEP of the run instead of final/ "
                                             "(with select_best, final/ is the chosen checkpoint)"),
) -> None:
    from dreamlock.exporting import export

    path = run_api(lambda: export(_checkpoint(run, checkpoint), fmt, out, dtype=dtype, lora_scale=lora_scale, overwrite=overwrite))
    console.print(f"[green]exported:[/] {path}", highlight=False, soft_wrap=True)
