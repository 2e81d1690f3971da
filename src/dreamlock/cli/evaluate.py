"""``dreamlock evaluate RUN --reference DIR``: likeness metrics + a report with image grids."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import checkpoint as _checkpoint, console, run_api


@app.command("evaluate")
def evaluate_command(
    run: str = typer.Argument(..., help="run folder (or model) to evaluate"),
    reference: Path = typer.Option(..., "--reference", help="folder of the subject's reference images"),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="prompt file, one per line, {trigger}/{class_word} placeholders [default: toy prompts for the toy world's models, else DreamBench's]"),
    seeds: int = typer.Option(8, "--seeds", min=1, help="images per prompt (seeds 0..N-1)"),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="toy or clip-dino [default: toy for the toy world's models, else clip-dino]"),
    scorer_model: Optional[str] = typer.Option(None, "--scorer-model", help="clip-dino: DIR with clip/ and dino/, or CLIP_DIR,DINO_DIR"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder (default RUN/evaluate)"),
    trigger: Optional[str] = typer.Option(None, "--trigger", help="trigger word (default: the run's)"),
    class_word: Optional[str] = typer.Option(None, "--class-word", help="class word (default: the run's)"),
    steps: int = typer.Option(20, "--steps", min=1, help="sampling steps"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance scale [default: the model's, else 5.0]"),
    impostors: Optional[Path] = typer.Option(None, "--impostors", help="other subjects of the class, to calibrate class drift"),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="use checkpoint STEP of the run instead of final/ "
                                             "(with select_best, final/ is the chosen checkpoint)"),
) -> None:
    """Measure subject fidelity, prompt fidelity, class drift (PRES), diversity (DIV), CLIP-I/T and the codec ceiling; write metrics.json + report.md."""
    from dreamlock.evaluation import evaluate

    result = run_api(lambda: evaluate(_checkpoint(run, checkpoint), reference, prompts, seeds, scorer, out, steps, guidance, trigger, class_word,
                                      scorer_model, impostors))
    codec = result.get("codec_ceiling") or {}
    rows = [(name, result.get(name)) for name in ("subject_fidelity", "subject_fidelity_rel", "prompt_fidelity", "class_drift",
                                                  "class_drift_share", "diversity", "clip_i", "clip_t") if name in result]
    rows += [(f"codec_ceiling{'_rel' if key.endswith('_rel') else ''}", codec[key])
             for key in ("subject_fidelity", "subject_fidelity_rel") if key in codec]
    for name, value in rows:
        console.print(f"{name:22s} {'n/a' if value is None else f'{value:.3f}'}", highlight=False)
