"""`dreamlock train [CONFIG.toml] [--set key=value ...] [flags]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamlock.cli import app
from dreamlock.cli.common import console, run_api


@app.command(help="Train a run: DreamBooth full fine-tune, LoRA, textual inversion or pivotal tuning.")
def train(
    config: Optional[Path] = typer.Argument(None, help="TOML config (keys as in diffusers' DreamBooth scripts)"),
    set_: list[str] = typer.Option([], "--set", help="override a key: --set learning_rate=1e-4"),
    base: Optional[str] = typer.Option(None, help="base model: diffusers folder, .safetensors file, hub id, or toy"),
    base_config: Optional[str] = typer.Option(None, help="diffusers folder with the config of a single-file base"),
    allow_pickle: Optional[bool] = typer.Option(None, "--allow-pickle", help="allow a pickled .ckpt base (runs code!)"),
    data: Optional[Path] = typer.Option(None, help="folder of instance images (+ .txt captions)"),
    output: Optional[Path] = typer.Option(None, help="run folder to write"),
    family: Optional[str] = typer.Option(None, help="model family (sd | sdxl | sd3 | flux | ip2p | sd-upscale | "
                                         "if-sr); default: read from the base model"),
    method: Optional[str] = typer.Option(None, help="full | lora | ti | pivotal | ip2p | sr"),
    class_word: Optional[str] = typer.Option(None, help="the subject's class, e.g. dog"),
    trigger: Optional[str] = typer.Option(None, help="the identifier word, e.g. sks"),
    prior_preservation: Optional[bool] = typer.Option(None, "--prior-preservation/--no-prior-preservation"),
    steps: Optional[int] = typer.Option(None, help="max_train_steps"),
    resume: Optional[str] = typer.Option(None, help="'latest' or a checkpoint folder"),
    checkpointing_steps: Optional[int] = typer.Option(None, help="save (and with --select-best, score) every N steps"),
    select_best: Optional[bool] = typer.Option(None, "--select-best", help="keep the checkpoint with the best measured "
                                               "likeness that has not drifted (selection.json / selection.md)"),
    early_stop_patience: Optional[int] = typer.Option(None, help="stop when the chosen checkpoint is N evaluations old"),
    memory_preset: Optional[str] = typer.Option(None, help="12gb | 16gb | 24gb: memory settings for your GPU's size"),
    masked_loss: Optional[bool] = typer.Option(None, "--masked-loss", help="learn the subject, not its background: "
                                               "the loss follows masks in DATA/masks/ (white = subject)"),
) -> None:
    from dreamlock.config import load_config
    from dreamlock.training.api import train as train_api
    from dreamlock.training.config import TrainConfig

    flags = {
        "base": base, "base_config": base_config, "allow_pickle": allow_pickle, "data": data, "output": output,
        "family": family, "method": method, "class_word": class_word, "trigger": trigger,
        "with_prior_preservation": prior_preservation, "max_train_steps": steps, "resume": resume,
        "checkpointing_steps": checkpointing_steps, "select_best": select_best, "early_stop_patience": early_stop_patience,
        "memory_preset": memory_preset, "masked_loss": masked_loss,
    }
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}

    def go():
        cfg = load_config(TrainConfig, config, flags, set_)
        return train_api(cfg)

    run_dir = run_api(go)
    console.print(f"[green]done:[/] run written to {run_dir}")
    selection = Path(run_dir) / "selection.json"
    if selection.is_file():
        import json

        data = json.loads(selection.read_text())
        console.print(f"checkpoint kept: step {data.get('final_step')} (selection.md explains why)")
        if data.get("warning"):
            console.print(f"[yellow]warning:[/] {data['warning']}", highlight=False)
