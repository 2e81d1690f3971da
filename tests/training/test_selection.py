"""Checkpoint selection (`select_best`, `early_stop_patience`).

The rule tests use hand-made tables whose answer is known. The training tests are plumbing on the
tiny random model: a scripted score per step stands in for likeness, so that the chosen step is
known in advance; they prove that final/ holds that checkpoint, that early stopping stops and
that resume keeps the table, not that the rule picks well (that is a toy-world measurement)."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from dreamlock.runs import LORA_FILE, read_run
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.api import finish, prepare_trainer, train
from dreamlock.training.selection import Rule, Selector, choose, drift_warning, eligible, should_stop


def row(step, sf, pf=1.0, drift=0.1, **extra):
    return {"step": step, "subject_fidelity": sf, "prompt_fidelity": pf, "class_drift": drift, "diversity": 0.2, **extra}


RULE = Rule(prompt_margin=0.1, drift_margin=0.5)


def base_row(drift=0.1, ceiling=0.9):
    return row(0, 0.1, drift=drift, reference_self_similarity=ceiling)


def test_rule_takes_the_best_likeness_that_has_not_drifted():
    # the drift cap is half way from the base model's 0.1 to the references' 0.9: 0.5
    rows = [base_row(), row(100, 0.5), row(200, 0.7, drift=0.45), row(300, 0.9, drift=0.6)]
    assert choose(rows, RULE) == 200  # 300 is the best likeness but its class images drifted past half way
    assert [r["step"] for r in eligible(rows, RULE)] == [100, 200]


def test_rule_drops_checkpoints_that_lost_prompt_fidelity():
    rows = [base_row(), row(100, 0.5, pf=1.0), row(200, 0.8, pf=0.85), row(300, 0.6, pf=0.95)]
    assert choose(rows, RULE) == 300


def test_rule_ties_go_to_the_earlier_step_and_nothing_before_a_checkpoint():
    assert choose([base_row(), row(100, 0.6), row(200, 0.6)], RULE) == 100
    assert choose([base_row()], RULE) is None


def test_rule_falls_back_to_the_least_drift_when_nothing_qualifies():
    rows = [base_row(drift=0.0, ceiling=0.2), row(100, 0.5, drift=0.4), row(200, 0.7, drift=0.2)]
    assert choose(rows, RULE) == 200
    assert "every checkpoint drifted" in drift_warning(rows, RULE) and "prior preservation" in drift_warning(rows, RULE)
    assert drift_warning([base_row(), row(100, 0.5)], RULE) is None  # one kept the class apart: no warning


def test_loss_rule_takes_the_lowest_loss():
    rows = [{"step": 0, "loss": 0.9}, {"step": 10, "loss": 0.4}, {"step": 20, "loss": 0.5}]
    assert choose(rows, Rule(by="loss")) == 10


def test_should_stop_after_patience_evaluations_without_a_better_checkpoint():
    rows = [base_row(), row(100, 0.5), row(200, 0.7), row(300, 0.6)]
    assert not should_stop(rows, RULE, 2)
    assert should_stop(rows + [row(400, 0.65)], RULE, 2)
    assert not should_stop(rows + [row(400, 0.65)], RULE, None)


def scripted(trainer, losses: dict[int, float], patience=None) -> Selector:
    """A selector whose score per step is given (lowest loss wins)."""
    return Selector(trainer.run_dir, Rule(by="loss"), patience, lambda step: ({"loss": losses.get(step, 1.0)}, []),
                    header={"scorer": "scripted"})


def lora_tensors(run_dir):
    return load_file(str(run_dir / "final" / LORA_FILE))


def test_final_holds_the_chosen_checkpoint_bit_for_bit(make_config, tmp_path):
    common = dict(max_train_steps=6, checkpointing_steps=2, random_flip=True)
    trainer = prepare_trainer(make_config(output=str(tmp_path / "chosen"), select_best=True, **common))
    trainer.selector = scripted(trainer, {2: 0.9, 4: 0.1, 6: 0.5})
    trainer.run()
    run = finish(trainer)
    selection = json.loads((run / "selection.json").read_text())
    assert [r["step"] for r in selection["rows"]] == [0, 2, 4, 6]
    assert selection["chosen_step"] == selection["final_step"] == 4 and selection["last_step"] == 6
    assert read_run(run).step == 4

    straight = train(make_config(output=str(tmp_path / "four"), **{**common, "max_train_steps": 4}))
    got, expected = lora_tensors(run), lora_tensors(straight)
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_early_stopping_stops_and_keeps_the_chosen_checkpoint(make_config, tmp_path):
    trainer = prepare_trainer(make_config(max_train_steps=20, checkpointing_steps=2, checkpoints_total_limit=1,
                                          select_best=True, early_stop_patience=2))
    trainer.selector = scripted(trainer, {2: 0.5, 4: 0.2, 6: 0.3, 8: 0.4}, patience=2)
    trainer.run()
    assert trainer.stopped_early and trainer.step == 8
    assert ckpt.checkpoint_path(tmp_path / "run", 4).is_dir()  # the retention limit spares the chosen one
    run = finish(trainer)
    selection = json.loads((run / "selection.json").read_text())
    assert selection["stopped_early"] and selection["final_step"] == 4
    assert "training stopped early" in (run / "selection.md").read_text()


def test_resume_keeps_the_selection_table(make_config, tmp_path):
    common = dict(max_train_steps=6, checkpointing_steps=2, select_best=True)
    first = prepare_trainer(make_config(**common))
    first.selector = scripted(first, {2: 0.3, 4: 0.2})
    first.run(stop_after=4)
    resumed = prepare_trainer(make_config(resume="latest", **common))
    assert resumed.step == 4
    assert [r["step"] for r in resumed.selector.rows] == [0, 2, 4]
    resumed.run()
    finish(resumed)
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert [r["step"] for r in selection["rows"]] == [0, 2, 4, 6]


def test_loss_scorer_by_default_for_a_model_without_scorer_weights(make_config, tmp_path):
    run = train(make_config(max_train_steps=4, checkpointing_steps=2, select_best=True, with_prior_preservation=True))
    selection = json.loads((run / "selection.json").read_text())
    assert selection["scorer"] == "loss" and "weaker signal" in selection["rule"]
    assert all(r["loss"] > 0 for r in selection["rows"])
    assert selection["chosen_step"] == min(selection["rows"][1:], key=lambda r: r["loss"])["step"]


def test_likeness_scorer_writes_metrics_and_sample_grids(make_config, tmp_path):
    run = train(make_config(max_train_steps=2, checkpointing_steps=2, select_best=True, selection_scorer="toy",
                            selection_seeds=2))
    selection = json.loads((run / "selection.json").read_text())
    assert [r["step"] for r in selection["rows"]] == [0, 2]
    for r in selection["rows"]:
        assert {"subject_fidelity", "prompt_fidelity", "class_drift", "diversity", "seconds"} <= set(r)
        assert (run / "selection" / f"step-{r['step']:06d}.png").is_file()
    assert not set(selection["seed_list"]) & set(range(8))  # never evaluate's seeds
    assert "← chosen" in (run / "selection.md").read_text()


def test_select_best_needs_checkpointing_steps(make_config):
    with pytest.raises(ValidationError, match="checkpointing_steps"):
        make_config(select_best=True)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_checkpoint_reads_like_a_run_stopped_there(make_config, tmp_path, method):
    from dreamlock.pipelines import load_pipeline
    from dreamlock.training.materialize import checkpoint_as_run

    common = dict(method=method, checkpointing_steps=2, learning_rate=1e-3 if method == "full" else 1e-2,
                  use_ema=method == "full")
    run = train(make_config(output=str(tmp_path / "long"), max_train_steps=4, **common))
    view = checkpoint_as_run(run, 2)
    assert read_run(view).step == 2 and checkpoint_as_run(run, 2) == view
    short = train(make_config(output=str(tmp_path / "short"), max_train_steps=2, **common))
    got, _ = load_pipeline(view)
    expected, _ = load_pipeline(short)
    for (name, a), (_, b) in zip(got.unet.state_dict().items(), expected.unet.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_flag_names_the_kept_checkpoints(make_config, tmp_path):
    import subprocess
    import sys

    run = train(make_config(max_train_steps=2, checkpointing_steps=1, checkpoints_total_limit=1))
    proc = subprocess.run([sys.executable, "-m", "dreamlock", "generate", str(run), "--prompt", "a photo of sks dog",
                           "--checkpoint", "7", "--out", str(tmp_path / "gen")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no checkpoint-7" in proc.stderr and "kept checkpoints: 1" in proc.stderr


def test_clip_dino_scorer_when_weights_are_given(make_config, tiny_clip_dino):
    """Plumbing: a real (non-toy) model with scorer_model selects with clip-dino by default."""
    run = train(make_config(max_train_steps=2, checkpointing_steps=2, select_best=True, selection_seeds=2,
                            scorer_model=str(tiny_clip_dino)))
    selection = json.loads((run / "selection.json").read_text())
    assert selection["scorer"] == "clip-dino"
    from dreamlock.evaluation.prompts import dreambench_prompts

    assert selection["prompts"] and not set(selection["prompts"]) & {p.text for p in dreambench_prompts("sks", "dog")}
    assert all(isinstance(r["subject_fidelity"], float) for r in selection["rows"])
