"""Any checkpoint of a run, readable like a finished run (``--checkpoint STEP``).

``checkpoint_as_run(RUN, STEP)`` writes ``RUN/checkpoints/checkpoint-STEP/as-run/`` once (a
``run.json`` and a ``final/`` saved by the run's own method from the checkpoint's weights, EMA
applied as at the end of training) and returns it, so that `generate`, `evaluate` and `export`
read a checkpoint through the same code that reads ``final/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from dreamlock.config import load_config
from dreamlock.errors import UserError
from dreamlock.runs import RUN_FILE, final_dir, read_run, write_run
from dreamlock.training import checkpoint as ckpt

AS_RUN = "as-run"


def checkpoint_as_run(run_dir: str | Path, step: int) -> Path:
    """The run-like folder of checkpoint ``step`` of ``run_dir`` (made on first use)."""
    run_dir = Path(run_dir)
    info = read_run(run_dir)
    source = ckpt.checkpoint_path(run_dir, step)
    if not (source / "state.json").is_file():
        kept = ", ".join(str(ckpt.checkpoint_step(p)) for p in ckpt.checkpoint_dirs(run_dir)) or "none"
        raise UserError(f"--checkpoint {step}: {run_dir} has no checkpoint-{step} (kept checkpoints: {kept}); "
                        "pick one of those, or leave --checkpoint out for final/")
    out = source / AS_RUN
    if (out / RUN_FILE).is_file():
        return out
    tmp = source / f".{AS_RUN}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokens = _save_final(run_dir, source, final_dir(tmp))
    write_run(tmp, info.model_copy(update={"step": step, "tokens": tokens}))
    tmp.rename(out)
    return out


def _save_final(run_dir: Path, source: Path, out: Path) -> list[str]:
    from dreamlock.methods import build_method
    from dreamlock.training.api import load_adapter
    from dreamlock.training.config import TrainConfig

    config = load_config(TrainConfig, run_dir / "config.toml")
    adapter = load_adapter(config)
    method = build_method(config.method, adapter, config)
    state, ema = ckpt.split_ema(load_file(str(source / "trainable.safetensors")))
    method.load_trainable_state(state)
    if ema:  # training ends by copying the EMA weights into the UNet; do the same here
        with torch.no_grad():
            for p, shadow in zip(adapter.denoiser.parameters(), ema):
                p.copy_(shadow)
    out.mkdir(parents=True, exist_ok=True)
    return method.save_final(out)
