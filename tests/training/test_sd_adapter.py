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
    target = adapter.target(latents, noise, t)
    if prediction_type == "epsilon":
        assert torch.equal(target, noise)
    else:
        a = adapter.noise_scheduler.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - adapter.noise_scheduler.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
        assert torch.allclose(target, a * noise - s * latents, atol=1e-6)
    weights = adapter.min_snr_weights(t, 5.0)
    assert weights.shape == (2,) and torch.all(weights > 0) and torch.all(weights <= 1)


def test_precision_choice():
    assert choose_precision("no", "cpu") == "no"
    assert choose_precision("auto", "cpu") in ("no", "bf16")
    from dreamlock.errors import UserError

    with pytest.raises(UserError, match="needs a GPU"):
        choose_precision("fp16", "cpu")
