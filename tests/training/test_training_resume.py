"""Checkpoints and resume (tiny random model, CPU): a run interrupted at step k and resumed from
its checkpoint ends with the same weights as an uninterrupted run, to 1e-6."""

from __future__ import annotations

import pytest
import torch

from dreamlock.errors import UserError
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.api import prepare_trainer


def _final_state(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.method.trainable_state().items()}


@pytest.mark.parametrize("method", ["lora", "ti", "full"])
def test_resume_matches_uninterrupted(make_config, tmp_path, method):
    common = dict(method=method, max_train_steps=6, checkpointing_steps=3, random_flip=True,
                  caption_dropout=0.3, learning_rate=1e-3 if method == "full" else 1e-2,
                  with_prior_preservation=method != "ti", use_ema=method == "full")
    straight = prepare_trainer(make_config(output=str(tmp_path / "a"), **common))
    straight.run()
    expected = _final_state(straight)

    first = prepare_trainer(make_config(output=str(tmp_path / "b"), **common))
    first.run(stop_after=4)  # the checkpoint at step 3 is on disk; step 4 is lost
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "b")] == ["checkpoint-3"]
    resumed = prepare_trainer(make_config(output=str(tmp_path / "b"), resume="latest", **common))
    assert resumed.step == 3
    resumed.run()
    got = _final_state(resumed)
    assert set(got) == set(expected)
    worst = max((got[k] - expected[k]).abs().max().item() for k in expected)
    assert worst <= 1e-6, f"resumed run differs from the uninterrupted one by {worst}"
    if method == "full":
        for a, b in zip(resumed.ema.shadow_params, straight.ema.shadow_params):
            assert torch.allclose(a, b, atol=1e-6)


def test_retention_limit_and_atomic_names(make_config, tmp_path):
    trainer = prepare_trainer(make_config(max_train_steps=7, checkpointing_steps=2, checkpoints_total_limit=2))
    trainer.run()
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    for folder in root.iterdir():
        assert {p.name for p in folder.iterdir()} == {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "state.json"}


def test_half_written_checkpoint_is_ignored(make_config, tmp_path):
    trainer = prepare_trainer(make_config(max_train_steps=2, checkpointing_steps=1))
    trainer.run()
    (tmp_path / "run" / "checkpoints" / ".checkpoint-9.tmp").mkdir()  # what a kill mid-write leaves
    assert ckpt.find_checkpoint(tmp_path / "run", "latest").name == "checkpoint-1"


def test_resume_errors(make_config, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        ckpt.find_checkpoint(tmp_path, "latest")
    with pytest.raises(UserError, match="not a checkpoint folder"):
        ckpt.find_checkpoint(tmp_path, str(tmp_path))


def test_stopped_run_stays_resumable(make_config, tmp_path):
    """A run that ends between checkpoints (e.g. max_train_minutes) writes one at its last step."""
    from dreamlock.training.api import finish

    trainer = prepare_trainer(make_config(max_train_steps=5, checkpointing_steps=2))
    trainer.run(stop_after=3)
    finish(trainer)
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "run")] == ["checkpoint-2", "checkpoint-3"]
    resumed = prepare_trainer(make_config(max_train_steps=5, checkpointing_steps=2, resume="latest"))
    assert resumed.step == 3
