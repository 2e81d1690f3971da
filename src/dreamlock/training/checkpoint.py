"""Checkpoints: written atomically (temp folder + rename), pruned to a retention limit, resumable.

A checkpoint folder holds ``trainable.safetensors`` (every tensor training changes), the optimizer
and LR-scheduler states (``optimizer.pt``, ``scheduler.pt``, read back with ``weights_only=True``,
which refuses arbitrary pickled objects) and ``state.json`` (the step). Data order and noise are
functions of (seed, step), so nothing else is needed for a resumed run to match an uninterrupted one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dreamlock.errors import UserError, WorkError

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(run_dir: Path, step: int, tensors: dict[str, torch.Tensor], optimizer, scheduler,
                    extra: dict | None = None, limit: int | None = None, keep: set[int] = frozenset()) -> Path:
    """Write ``checkpoint-<step>`` atomically, then delete the oldest beyond ``limit`` (never the
    steps in ``keep``: the checkpoint `select_best` has chosen so far)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".checkpoint-*"):  # left by a process killed while writing or deleting
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"checkpoint-{step}"
    tmp = root / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **(extra or {})}))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failed(f"checkpoint-{step}", root, e, checkpoint_dirs(run_dir)) from None
    if final.exists():  # the same step saved again (after a resume): swap, never a moment with neither
        old = root / f".checkpoint-{step}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    if limit is not None:
        prunable = [p for p in checkpoint_dirs(run_dir) if checkpoint_step(p) not in keep]
        for old in prunable[:max(0, len(prunable) - limit)]:
            _remove(old)
    return final


def write_failed(what: str, where: Path, error: OSError, kept: list[Path]) -> WorkError:
    """A failed write (disk full, no permission...) as one line: what, why, what is intact, what to do."""
    reason = error.strerror or str(error)
    intact = f"{kept[-1]} is intact" if kept else "no earlier checkpoint exists"
    return WorkError(f"could not write {what} in {where}: {reason}; {intact}; free space there (or fix its "
                     "permissions), then continue with --resume latest")


def _remove(path: Path) -> None:
    """Delete a checkpoint: first out of sight (an atomic rename to a dotted name), so a process
    killed while deleting never leaves a half-deleted folder that looks like a checkpoint."""
    hidden = path.parent / f".{path.name}.del"
    shutil.rmtree(hidden, ignore_errors=True)
    path.rename(hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def split_ema(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """A checkpoint's tensors as (the method's trainable state, the EMA shadow parameters in UNet
    parameter order; empty without EMA)."""
    state = {k: v for k, v in tensors.items() if not k.startswith("ema.")}
    return state, [tensors[f"ema.{i}"] for i in range(len(tensors) - len(state))]


def checkpoint_step(path: Path) -> int:
    return int(_NAME.match(Path(path).name).group(1))


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"checkpoint-{step}"


def find_checkpoint(run_dir: Path, resume: str) -> Path:
    """``latest`` -> the newest checkpoint of the run; anything else is a checkpoint folder."""
    if resume == "latest":
        found = checkpoint_dirs(run_dir)
        if not found:
            raise UserError(f"--resume latest: no checkpoint in {Path(run_dir) / CHECKPOINTS}; train with checkpointing_steps first")
        return found[-1]
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise UserError(f"--resume {resume}: not a checkpoint folder (no state.json); give 'latest' or a checkpoints/checkpoint-N folder")
    return path


def load_checkpoint(path: Path, optimizer, scheduler) -> tuple[int, dict[str, torch.Tensor], dict]:
    """Restore optimizer and scheduler; return (step, trainable tensors, extra state)."""
    state = json.loads((path / "state.json").read_text())
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    tensors = load_file(str(path / "trainable.safetensors"))
    return int(state.pop("step")), tensors, state
