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


# The real command with a slowed encoder (so that a kill lands while latents are being encoded);
# it logs each encoder call's image count to the file named first.
_SLOW_ENCODER = """
import sys, time
from dreamlock.families.base import ModelFamily
encode, log_path = ModelFamily.encode_images, sys.argv[1]
def slow(self, pixels):
    time.sleep(0.4)
    with open(log_path, "a") as log:
        log.write(f"{len(pixels)}\\n")
    return encode(self, pixels)
ModelFamily.encode_images = slow
sys.argv = ["dreamlock", *sys.argv[2:]]
from dreamlock.cli import main
main()
"""


def test_sigkill_while_encoding_latents_keeps_the_finished_chunks_and_the_run_ends_the_same(
        tmp_path, tiny_base, images_writer):
    from dreamlock.training.latent_cache import CACHE_DIR, CHUNK

    data = images_writer(tmp_path / "data", 3 * CHUNK)
    config = tmp_path / "train.toml"
    config.write_text(f'base = "{tiny_base}"\ndata = "{data}"\nresolution = 32\nmethod = "lora"\nclass_word = "dog"\n'
                      "learning_rate = 1e-2\nmax_train_steps = 2\nwith_prior_preservation = false\n")

    def train(out, log):
        args = [sys.executable, "-c", _SLOW_ENCODER, str(log), "train", str(config), "--output", str(out)]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    straight = train(tmp_path / "straight", tmp_path / "straight.log")  # a fresh process, as the others (an
    assert straight.wait(timeout=300) == 0, straight.stderr.read()  # in-process run differed by 3e-5 after other tests)
    run, cache = tmp_path / "killed", tmp_path / "killed" / CACHE_DIR
    proc = train(run, tmp_path / "first.log")
    while proc.poll() is None and len(list(cache.glob("*.safetensors"))) < CHUNK:
        time.sleep(0.02)
    time.sleep(0.2)  # into the next chunk's encoding
    assert proc.poll() is None, "the run ended before it could be killed while encoding"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = sorted(cache.glob("*.safetensors"))
    assert 0 < len(kept) < 3 * CHUNK and len(kept) % CHUNK == 0  # whole chunks only
    for entry in kept:
        load_file(str(entry))  # every entry on disk is whole
    again = train(run, tmp_path / "again.log")  # the same command: nothing to resume, it starts over
    assert again.wait(timeout=300) == 0, again.stderr.read()
    encoded = sum(int(n) for n in (tmp_path / "again.log").read_text().split())
    assert encoded == 3 * CHUNK - len(kept)  # the finished chunks were not encoded again
    want = load_file(str(tmp_path / "straight" / "final" / "pytorch_lora_weights.safetensors"))
    got = load_file(str(run / "final" / "pytorch_lora_weights.safetensors"))
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
