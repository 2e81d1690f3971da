"""Plumbing of the toy base's one-command rebuild and of continued pretraining (a few steps each;
no learning is claimed: the quality of the shipped base is benchmarks/base_quality.py's job)."""

from __future__ import annotations

import json
import tomllib

from dreamlock.toyworld.base import CAPTION_DROPOUT, main


def test_rebuild_then_continue_with_caption_dropout(tmp_path):
    main(["--out", str(tmp_path / "b"), "--images", "24", "--vae-steps", "2", "--vae-batch", "4", "--batch", "4",
          "--steps", "2"])
    run = tmp_path / "b" / "run"
    assert json.loads((run / "run.json").read_text())["step"] == 2
    assert tomllib.loads((run / "config.toml").read_text())["caption_dropout"] == CAPTION_DROPOUT == 0.1

    main(["--out", str(tmp_path / "c"), "--from-model", str(run / "final" / "pipeline"), "--images", "24",
          "--batch", "4", "--steps", "2", "--lr", "1e-4", "--caption-dropout", "0.5"])
    cont = tmp_path / "c" / "run"
    config = tomllib.loads((cont / "config.toml").read_text())
    assert config["caption_dropout"] == 0.5 and config["use_ema"] is False and config["learning_rate"] == 1e-4
    assert json.loads((cont / "run.json").read_text())["step"] == 2
    summary = json.loads((tmp_path / "c" / "continue_summary.json").read_text())
    assert summary["steps_done"] == 2 and summary["cpu_capability"]
