"""`dreamlock edit RUN_OR_MODEL IMAGE --instruction ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import console, run_api


@app.command(help="Edit an image by instruction with an InstructPix2Pix model (a run of --method ip2p, or any).")
def edit(
    run_or_model: str = typer.Argument(..., help="an InstructPix2Pix model folder or hub id, or a run of --method ip2p"),
    image: Path = typer.Argument(..., help="the image to edit"),
    instruction: list[str] = typer.Option(..., "--instruction", "-i", help="what to change, e.g. 'put it on the beach'; repeatable"),
    n: int = typer.Option(4, "-n", help="edits per instruction"),
    seed: int = typer.Option(0, help="first seed; edit i uses seed+i"),
    steps: int = typer.Option(30, help="sampling steps"),
    guidance: Optional[float] = typer.Option(None, help="how strongly to follow the instruction [default: the model's, else 7.5]"),
    image_guidance: Optional[float] = typer.Option(None, help="how strongly to keep the image [default: 1.5]"),
    negative_prompt: Optional[str] = typer.Option(None, help="negative prompt"),
    out: Path = typer.Option(Path("edited"), help="output folder"),
    grid: bool = typer.Option(False, "--grid", help="also write one grid per instruction (the input first)"),
) -> None:
    from dreamlock.editing import edit as edit_api

    files = run_api(lambda: edit_api(run_or_model, image, instruction, n, seed, steps, guidance, image_guidance, out,
                                     grid, negative_prompt))
    console.print(f"[green]done:[/] {len(files)} file(s) in {out}")
