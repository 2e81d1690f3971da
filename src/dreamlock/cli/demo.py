"""`dreamlock demo [--out DIR]`: the whole workflow on the built-in toy world."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import run_api
from dreamlock.toyworld.subjects import DEMO_SUBJECT


@app.command(help="Run the whole flow on the built-in toy world (CPU, minutes): subject -> train -> generate -> evaluate.")
def demo(
    out: Path = typer.Option(Path("dreamlock-demo"), help="folder for everything the demo writes"),
    subject: str = typer.Option(DEMO_SUBJECT, help="built-in toy subject, or fresh:SEED for a random new one"),
    method: str = typer.Option("lora", help="full | lora | ti | pivotal"),
    steps: Optional[int] = typer.Option(None, help="training steps (default: the measured recipe)"),
    seeds: Optional[int] = typer.Option(None, help="evaluation seeds per prompt"),
    fast: bool = typer.Option(False, "--fast", help="a quick smoke run (few steps; for CI)"),
) -> None:
    from dreamlock.toyworld.demo import demo as demo_api

    run_api(lambda: demo_api(out, subject, method, steps, fast, seeds))
