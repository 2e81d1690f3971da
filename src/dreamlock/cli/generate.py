"""`dreamlock generate RUN_OR_MODEL --prompt ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import checkpoint as _checkpoint, console, run_api


@app.command(help="Generate images from a trained run or any model folder.")
def generate(
    run_or_model: str = typer.Argument(..., help="a run folder from `dreamlock train`, or a model"),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="prompt ({trigger}/{class_word} are filled in); repeatable"),
    n: int = typer.Option(4, "-n", help="images per prompt"),
    seed: int = typer.Option(0, help="first seed; image i uses seed+i"),
    steps: int = typer.Option(30, help="sampling steps"),
    guidance: Optional[float] = typer.Option(None, help="classifier-free guidance scale [default: the model's, else 7.5]"),
    lora_scale: float = typer.Option(1.0, help="LoRA strength"),
    negative_prompt: Optional[str] = typer.Option(None, help="negative prompt"),
    out: Path = typer.Option(Path("generated"), help="output folder"),
    grid: bool = typer.Option(False, "--grid", help="also write one grid per prompt"),
    lora: list[Path] = typer.Option([], "--lora", help="a LoRA file (diffusers or kohya keys) to apply on top; repeatable"),
    embedding: list[Path] = typer.Option([], "--embedding", help="an embedding file (A1111 or diffusers); its token is "
                                         "the file name (A1111) or its key; repeatable"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="allow pickled .bin/.pt LoRA or embedding files "
                                      "(read with torch's weights-only loader)"),
    upscale: Optional[str] = typer.Option(None, "--upscale", help="an upscaler (a run of --method sr, or any "
                                          "StableDiffusionUpscalePipeline) that redraws every image larger"),
    upscale_guidance: Optional[float] = typer.Option(None, "--upscale-guidance", help="the upscaler's guidance scale "
                                                     "[default: the upscaler's recommended, else its family's]"),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="use checkpoint STEP of the run instead of final/ "
                                             "(with select_best, final/ is the chosen checkpoint)"),
) -> None:
    from dreamlock.generation import generate as generate_api

    files = run_api(lambda: generate_api(_checkpoint(run_or_model, checkpoint), prompt, n, seed, steps, guidance,
                                         lora_scale, out, grid, negative_prompt, [str(p) for p in lora],
                                         [str(p) for p in embedding], allow_pickle, upscale, upscale_guidance))
    console.print(f"[green]done:[/] {len(files)} file(s) in {out}")
