"""The workflow through the real `dreamlock` command on the tiny random model (plumbing):
prepare -> caption -> train (with a TOML config and --set) -> generate -> export."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image


def dreamlock(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dreamlock", *args], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_workflow(tmp_path, tiny_base):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(photos / f"p{i}.jpg")
    assert dreamlock("prepare", str(photos), str(tmp_path / "data"), "--size", "64", "--min-size", "16").returncode == 0
    assert dreamlock("caption", str(tmp_path / "data"), "--trigger", "sks", "--class-word", "dog").returncode == 0
    assert (tmp_path / "data" / "p0.txt").read_text().strip() == "a photo of sks dog"
    config = tmp_path / "train.toml"
    config.write_text(f'base = "{tiny_base}"\nresolution = 64\nmethod = "lora"\nclass_word = "dog"\nlearning_rate = 1e-2\n')
    proc = dreamlock("train", str(config), "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"),
                     "--steps", "3", "--set", "rank=2", "--no-prior-preservation")
    assert proc.returncode == 0, proc.stderr
    assert "train: 3/3 (100%) loss " in proc.stderr  # output is not a terminal: plain progress lines
    assert "torchvision" not in proc.stderr + proc.stdout  # no library notices the user cannot act on
    resolved = (tmp_path / "run" / "config.toml").read_text()
    assert "rank = 2" in resolved and "max_train_steps = 3" in resolved
    proc = dreamlock("generate", str(tmp_path / "run"), "--prompt", "a photo of sks dog", "-n", "2", "--steps", "2",
                     "--out", str(tmp_path / "gen"), "--grid")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "gen").glob("*.png"))) == 3
    proc = dreamlock("export", str(tmp_path / "run"), "--format", "kohya-lora", "--out", str(tmp_path / "dog.safetensors"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dog.safetensors").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["method"] == "lora"
    again = dreamlock("train", str(config), "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"))
    assert again.returncode == 2 and "--resume latest" in again.stderr
