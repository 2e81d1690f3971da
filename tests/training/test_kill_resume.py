"""Training killed with SIGKILL at random moments (during steps and checkpoint writes), resumed
with ``--resume latest`` each time, ends with the weights of an uninterrupted run, and no
checkpoint on disk is ever unreadable (tiny random SD through the real command; plumbing)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from dreamlock.training import checkpoint as ckpt

STEPS = 24


def _config(tmp_path, tiny_base, data) -> str:
    path = tmp_path / "train.toml"
    path.write_text(f'base = "{tiny_base}"\ndata = "{data}"\nresolution = 32\nmethod = "lora"\nclass_word = "dog"\n'
                    f"learning_rate = 1e-2\nmax_train_steps = {STEPS}\ncheckpointing_steps = 1\n"
                    "checkpoints_total_limit = 2\nwith_prior_preservation = false\n")
    return str(path)


def _train(config: str, out, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "dreamlock", "train", config, "--output", str(out)]
    return subprocess.Popen(args + (["--resume", "latest"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _latest(run) -> int:
    found = ckpt.checkpoint_dirs(run)
    return ckpt.checkpoint_step(found[-1]) if found else 0


def _all_readable(run) -> int:
    """Every checkpoint folder loads (call it only while no training process runs)."""
    found = ckpt.checkpoint_dirs(run)
    for path in found:
        load_file(str(path / "trainable.safetensors"))
        torch.load(path / "optimizer.pt", weights_only=True)
    return ckpt.checkpoint_step(found[-1]) if found else 0


def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_base, images_writer):
    data = images_writer(tmp_path / "data", 3)
    config = _config(tmp_path, tiny_base, data)
    straight = _train(config, tmp_path / "straight", resume=False)
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    rng = random.Random(0)
    run, kills, resume = tmp_path / "killed", 0, False
    while kills < 3:
        proc = _train(config, run, resume)
        reached = _latest(run)
        while proc.poll() is None and _latest(run) <= reached:  # wait for one more checkpoint
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))  # then anywhere: mid-step, mid-write, mid-prune
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert _all_readable(run) > 0  # the retention limit never removed the last good checkpoint
        resume = True
    final = _train(config, run, resume=True)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert kills >= 2
    want = load_file(str(tmp_path / "straight" / "final" / "pytorch_lora_weights.safetensors"))
    got = load_file(str(run / "final" / "pytorch_lora_weights.safetensors"))
    assert set(want) == set(got)
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
