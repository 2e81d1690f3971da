"""The SD family adapter's diffusion maths (tiny random models; plumbing)."""

from __future__ import annotations

import pytest
import torch

from dreamlock.families.build import SDArch, save_tiny_pipeline
from dreamlock.families.sd import SDAdapter
from dreamlock.training.precision import choose_precision


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_target_follows_the_scheduler(tmp_path, prediction_type):
    base = save_tiny_pipeline(tmp_path / "m", SDArch(prediction_type=prediction_type))
    adapter = SDAdapter.load(str(base))
    latents, noise = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    t = torch.tensor([10, 900])
    target = adapter.objective.target(latents, noise, t)
    if prediction_type == "epsilon":
        assert torch.equal(target, noise)
    else:
        a = adapter.objective.scheduler.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - adapter.objective.scheduler.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
        assert torch.allclose(target, a * noise - s * latents, atol=1e-6)
    weights = adapter.objective.weights(t, 5.0)
    assert weights.shape == (2,) and torch.all(weights > 0) and torch.all(weights <= 1)


def test_precision_choice():
    assert choose_precision("no", "cpu") == "no"
    assert choose_precision("auto", "cpu") in ("no", "bf16")
    from dreamlock.errors import UserError

    with pytest.raises(UserError, match="needs a GPU"):
        choose_precision("fp16", "cpu")


def test_zero_terminal_snr_trains_and_samples_with_the_rescaled_schedule(tmp_path, make_config):
    """SD2-style option on a tiny v-prediction model (plumbing): the schedule reaches SNR 0, the
    run records it, and generation uses it; an epsilon model refuses it in one line."""
    import numpy as np

    from dreamlock.errors import UserError
    from dreamlock.generation import load_generator
    from dreamlock.runs import read_run
    from dreamlock.training.api import finish, prepare_trainer

    base = save_tiny_pipeline(tmp_path / "v", SDArch(prediction_type="v_prediction"))
    trainer = prepare_trainer(make_config(base=str(base), zero_terminal_snr=True, max_train_steps=2))
    assert trainer.adapter.objective.scheduler.alphas_cumprod[-1] < 1e-6  # zero terminal SNR
    trainer.run()
    run = finish(trainer)
    assert read_run(run).scheduler == {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    gen = load_generator(run)
    assert gen.pipe.scheduler.config.rescale_betas_zero_snr and gen.pipe.scheduler.config.timestep_spacing == "trailing"
    assert np.isfinite(np.asarray(gen.images("a photo of sks dog", [0], steps=2, guidance=1.0)[0], dtype=np.float32)).all()
    with pytest.raises(UserError, match="zero_terminal_snr needs a v-prediction model"):
        prepare_trainer(make_config(zero_terminal_snr=True, output=str(tmp_path / "eps")))
