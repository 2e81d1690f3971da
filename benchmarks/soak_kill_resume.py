"""Soak: SIGKILL `dreamlock train` again and again, resume with `--resume latest`, lose nothing.

The toy base with the demo's LoRA recipe (prior preservation, class images generated into the run's
own cache), checkpointing every few steps with a retention limit of 2. Each round starts the real
CLI (resuming after the first), then kills it with SIGKILL at a random moment: some during start-up
(loading, class-image generation, latent caching), some the moment a checkpoint's temporary folder
appears (mid-write), the rest at a random time after a new checkpoint appears (mid-step, mid-prune). After every kill, with no process running: every
checkpoint on disk loads, the newest checkpoint never goes backwards, no class image is unreadable.
At the end the resumed run must equal an uninterrupted run with the same config (max |Δ| ≤ 1e-6).

    python benchmarks/soak_kill_resume.py --kills 20        # writes benchmarks/soak_kill_resume.json
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from dreamlock.config import dump_config
from dreamlock.toyworld.demo import demo_train_config
from dreamlock.toyworld.subjects import builtin_subject, write_reference_set
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.config import TrainConfig

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from train_speed import machine  # noqa: E402 - the one machine description of the benchmarks
LORA = Path("final") / "pytorch_lora_weights.safetensors"


def write_config(work: Path, run: Path, steps: int, every: int) -> Path:
    spec = builtin_subject("dotty-heart")
    data = work / "data"
    if not data.is_dir():
        write_reference_set(spec, data)
    values = demo_train_config(data, run, spec.class_word, "lora", steps, fast=True, cache=run / "class-images")
    values.update(checkpointing_steps=every, checkpoints_total_limit=2, validation_prompt=[], num_threads=2)
    path = work / f"{run.name}.toml"
    dump_config(TrainConfig(**values), path)
    return path


def start(config: Path, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "dreamlock", "train", str(config)] + (["--resume", "latest"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def latest(run: Path) -> int:
    found = ckpt.checkpoint_dirs(run)
    return ckpt.checkpoint_step(found[-1]) if found else 0


def check_disk(run: Path) -> int:
    """Every checkpoint and class image on disk loads (no training process may run meanwhile)."""
    for path in ckpt.checkpoint_dirs(run):
        load_file(str(path / "trainable.safetensors"))
        torch.load(path / "optimizer.pt", weights_only=True)
        json.loads((path / "state.json").read_text())
    for image in (run / "class-images").rglob("*.png"):
        Image.open(image).load()
    return latest(run)


def fresh_temporary(run: Path, since: float) -> bool:
    """A checkpoint being written now (not one left behind by the previous kill)."""
    for tmp in (run / ckpt.CHECKPOINTS).glob(".checkpoint-*.tmp"):
        try:
            if tmp.stat().st_mtime >= since:
                return True
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return False


def moment(run: Path) -> str:
    """What the process was doing when killed, as far as the disk shows."""
    root = run / ckpt.CHECKPOINTS
    if any(root.glob(".checkpoint-*.tmp")):
        return "writing a checkpoint"
    if any(root.glob(".checkpoint-*.del")) or any(root.glob(".checkpoint-*.old")):
        return "pruning / swapping"
    return "start-up" if not ckpt.checkpoint_dirs(run) else "training"


def kill_once(config: Path, run: Path, resume: bool, rng: random.Random, startup_share: float,
              write_share: float, window: float) -> dict | None:
    proc = start(config, resume)
    began, wall, reached = time.monotonic(), time.time(), latest(run)
    aim = rng.random()
    if aim < startup_share:
        time.sleep(rng.uniform(0.5, 10.0))
    elif aim < startup_share + write_share:  # the moment this process's first temporary folder appears
        while proc.poll() is None and not fresh_temporary(run, wall):
            time.sleep(0.001)
    else:
        while proc.poll() is None and latest(run) <= reached:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, window))
    if proc.poll() is not None:
        if proc.returncode != 0:
            raise SystemExit(f"training failed on its own: {proc.stderr.read()[-400:]}")
        return None  # finished before the kill came
    where = "start-up" if aim < startup_share and latest(run) == reached else moment(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = reached
    after = check_disk(run)
    if after < before:
        raise SystemExit(f"checkpoint went backwards: {before} -> {after}")
    return {"seconds_in": round(time.monotonic() - began, 2), "at": where, "latest_step_after": after}


def soak(work: Path, kills: int, steps: int, every: int, seed: int, startup_share: float, write_share: float,
         window: float) -> dict:
    t0 = time.monotonic()
    straight_cfg = write_config(work, work / "straight", steps, every)
    proc = start(straight_cfg, False)
    if proc.wait() != 0:
        raise SystemExit(proc.stderr.read()[-400:])
    straight_s = time.monotonic() - t0
    run = work / "killed"
    config = write_config(work, run, steps, every)
    rng, rounds, resume = random.Random(seed), [], False
    while len(rounds) < kills:
        result = kill_once(config, run, resume, rng, startup_share, write_share, window)
        if result is None:
            break
        rounds.append(result)
        resume = resume or bool(ckpt.checkpoint_dirs(run))
        print(f"kill {len(rounds):2d}: {result['at']:<22} after {result['seconds_in']:5.1f}s, newest checkpoint "
              f"{result['latest_step_after']}", flush=True)
    final = start(config, resume)
    if final.wait() != 0:
        raise SystemExit(final.stderr.read()[-400:])
    want, got = load_file(str(work / "straight" / LORA)), load_file(str(run / LORA))
    diff = max((want[k] - got[k]).abs().max().item() for k in want) if set(want) == set(got) else float("inf")
    return {"kills": len(rounds), "rounds": rounds, "steps": steps, "checkpointing_steps": every,
            "max_abs_diff_vs_uninterrupted": diff, "equal_within_1e-6": diff <= 1e-6,
            "moments": {m: sum(r["at"] == m for r in rounds) for m in sorted({r["at"] for r in rounds})},
            "uninterrupted_seconds": round(straight_s, 1), "total_seconds": round(time.monotonic() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=3, help="checkpointing_steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--startup-share", type=float, default=0.25, help="share of kills aimed at start-up")
    parser.add_argument("--write-share", type=float, default=0.3, help="share of kills aimed at a checkpoint write")
    parser.add_argument("--window", type=float, default=1.5, help="seconds after a new checkpoint to kill within")
    parser.add_argument("--out", type=Path, default=HERE / "soak_kill_resume.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dreamlock-soak-") as tmp:
        result = soak(Path(tmp), args.kills, args.steps, args.every, args.seed, args.startup_share,
                      args.write_share, args.window)
    result.update(machine=machine(), command=" ".join(["python", "benchmarks/soak_kill_resume.py", *sys.argv[1:]]))
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{'kills':<8}{'moments':<60}{'max |Δ| vs uninterrupted':<26}{'verdict'}")
    print(f"{result['kills']:<8}{json.dumps(result['moments']):<60}{result['max_abs_diff_vs_uninterrupted']:<26.2e}"
          f"{'equal (≤1e-6)' if result['equal_within_1e-6'] else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
