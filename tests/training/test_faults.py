"""Faults during training that must cost nothing (tiny random SD; plumbing): a NaN loss stops
before the weights change, naming the step and the checkpoint to resume from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dreamlock.training.api import prepare_trainer
from dreamlock.training.config import TrainConfig


@pytest.fixture
def make(tiny_bases, tmp_path, images_writer):
    data = images_writer(tmp_path / "data", 2)

    def config(**overrides) -> TrainConfig:
        values = dict(base=str(tiny_bases["sd"]), data=str(data), output=str(tmp_path / "run"), method="lora",
                      trigger="sks", class_word="dog", max_train_steps=2, learning_rate=1e-2)
        return TrainConfig.model_validate(values | overrides)

    return config


def test_a_nan_loss_stops_naming_the_step_and_the_intact_checkpoint(make, monkeypatch):
    from dreamlock.errors import WorkError

    trainer = prepare_trainer(make(checkpointing_steps=1, max_train_steps=4))
    trainer.run(stop_after=1)
    before = {k: v.clone() for k, v in trainer.method.trainable_state().items()}
    monkeypatch.setattr(trainer, "micro_loss", lambda *a: (torch.tensor(float("nan"), requires_grad=True),
                                                           {"loss": float("nan")}))
    with pytest.raises(WorkError, match=r"loss became nan at step 1; the weights were not updated, and .*checkpoint-1 "
                                        r"is intact \(resume from it with --resume latest\); lower learning_rate") as e:
        trainer.optimizer_step()
    assert "\n" not in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in trainer.method.trainable_state().items())


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(make, monkeypatch):
    import errno

    from dreamlock.errors import WorkError
    from dreamlock.training import checkpoint as ckpt

    trainer = prepare_trainer(make(checkpointing_steps=1, max_train_steps=4))
    trainer.run(stop_after=1)
    good = ckpt.checkpoint_dirs(trainer.run_dir)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(WorkError, match=r"could not write checkpoint-2 in .*: No space left on device; .*checkpoint-1 "
                                        r"is intact; free space there") as e:
        trainer.run(stop_after=2)
    assert "\n" not in str(e.value)
    assert ckpt.checkpoint_dirs(trainer.run_dir) == good and not list((trainer.run_dir / "checkpoints").glob(".*"))
    torch.load(good[0] / "optimizer.pt", weights_only=True)


def test_a_run_killed_before_its_first_checkpoint_starts_again_without_resume(make):
    """What such a kill leaves (config, logs, a half-written checkpoint folder) is not a run to protect:
    the same command starts over; a run with a complete checkpoint is still refused."""
    from dreamlock.errors import UserError
    from dreamlock.training.validate import check_paths

    config = make(checkpointing_steps=1)
    run = config.output
    (tmp := Path(run) / "checkpoints" / ".checkpoint-1.tmp").mkdir(parents=True)
    (tmp.parent.parent / "config.toml").write_text("")
    check_paths(config)
    (tmp.parent / "checkpoint-1").mkdir()
    with pytest.raises(UserError, match="already holds a run"):
        check_paths(config)
