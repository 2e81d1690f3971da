"""Config validation: every bad input is one line naming the key or file, before anything heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dreamlock.config import load_config, parse_override
from dreamlock.errors import UserError
from dreamlock.training.config import TrainConfig
from dreamlock.training.validate import validate_config


def test_missing_data_folder(make_config, tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        validate_config(make_config(data=str(tmp_path / "nope")))


def test_no_images(make_config, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        validate_config(make_config(data=str(tmp_path / "empty")))


def test_trigger_absent_from_caption(make_config, tmp_path, images_writer):
    data = images_writer(tmp_path / "capt", 2, caption="a photo of a dog")
    with pytest.raises(UserError, match=r"img0\.txt: caption lacks the trigger word 'sks'"):
        validate_config(make_config(data=str(data)))
    data2 = images_writer(tmp_path / "capt2", 2, caption="a photo of {trigger} dog")
    assert len(validate_config(make_config(data=str(data2)))) == 2


def test_existing_run_needs_resume(make_config, tmp_path):
    (tmp_path / "run" / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(UserError, match="--resume latest"):
        validate_config(make_config())


@pytest.mark.parametrize("overrides, message", [
    (dict(with_prior_preservation=True, class_word=None), "needs class_word"),
    (dict(method="ti", with_prior_preservation=True), "prior preservation does not apply"),
    (dict(method="full", with_prior_preservation=True, prior_mode="prior_prediction"), "needs a LoRA"),
    (dict(method="lora", use_ema=True), "use_ema is for method full"),
    (dict(method="ti", trigger=None), "set --trigger"),
])
def test_incompatible_options(make_config, overrides, message):
    with pytest.raises(Exception, match=message):
        validate_config(make_config(**overrides))


def test_toml_flags_and_set_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('base = "b"\ndata = "d"\noutput = "o"\nlearning_rate = 0.5\nrank = 2\n')
    cfg = load_config(TrainConfig, toml, {"rank": 8}, ["learning_rate=1e-3", "validation_prompt=['x', 'y']", "trigger=ohwx"])
    assert (cfg.learning_rate, cfg.rank, cfg.validation_prompt, cfg.trigger) == (1e-3, 8, ["x", "y"], "ohwx")


def test_unknown_key_and_wrong_type_name_the_key(tmp_path):
    with pytest.raises(UserError, match="unknown key 'learnin_rate'"):
        load_config(TrainConfig, None, {"base": "b", "data": "d", "output": "o"}, ["learnin_rate=1"])
    with pytest.raises(UserError, match="key 'rank'"):
        load_config(TrainConfig, None, {"base": "b", "data": "d", "output": "o"}, ["rank=many"])
    with pytest.raises(UserError, match="expected key=value"):
        parse_override("rank")
    bad = tmp_path / "bad.toml"
    bad.write_text("rank = = 3")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(TrainConfig, bad)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dreamlock.cli", "train", "--base", str(tmp_path), "--data",
                           str(tmp_path / "missing"), "--output", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "data folder not found" in lines[0]
    proc = subprocess.run([sys.executable, "-m", "dreamlock.cli", "train", "--set", "rank=x", "--base", "b",
                           "--data", "d", "--output", "o"], capture_output=True, text=True)
    assert proc.returncode == 2 and "key 'rank'" in proc.stderr and "Traceback" not in proc.stderr
