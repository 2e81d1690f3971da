"""The super-resolution stage on tiny random models (plumbing): `train --method sr` fine-tunes an
upscaler's UNet (the SD x4 upscaler and DeepFloyd IF stage II) on pairs made from the subject's own
images and resumes exactly (noise augmentation included); `generate --upscale` chains a base model
and the upscaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlock.families import get_family
from dreamlock.families.conditioning import Conditioning
from dreamlock.generation import generate
from dreamlock.training.api import prepare_trainer, train


def test_the_condition_is_the_image_downscaled_by_the_upscale_factor(tiny_bases):
    adapter = get_family("sd-upscale").load(str(tiny_bases["sd-upscale"]))
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    low = adapter.encode_condition(pixels)
    assert adapter.upscale_factor == 2 and low.shape == (1, 3, 16, 16)
    assert torch.allclose(low[0, :, 0, 0], pixels[0, :, :2, :2].mean(dim=(1, 2)))
    cond = adapter.encode_text(["a photo of a dog"]).with_extras(image=low)
    torch.manual_seed(0)
    first = adapter.predict(torch.randn(1, 4, 16, 16), torch.tensor([500]), cond)
    torch.manual_seed(0)
    again = adapter.predict(torch.randn(1, 4, 16, 16), torch.tensor([500]), cond)
    assert torch.equal(first, again)  # the noise level and augmentation come from the seeded generator


@pytest.mark.parametrize("family", ["sd-upscale", "if-sr"])
def test_sr_trains_the_unet_and_resumes_exactly(make_sr, tmp_path, family):
    straight = prepare_trainer(make_sr(family, output=str(tmp_path / "a"), max_train_steps=4))
    before = {k: v.clone() for k, v in straight.adapter.denoiser.state_dict().items()}
    frozen = [m for m in straight.adapter.modules() if m is not straight.adapter.denoiser]  # VAE or T5, text encoder
    frozen_before = [{k: v.clone() for k, v in m.state_dict().items()} for m in frozen]
    assert straight.data.instance.condition[0].shape[-1] * straight.adapter.upscale_factor == \
        straight.data.instance.latents.shape[-1] * straight.adapter.vae_scale_factor
    straight.run()
    after = straight.adapter.denoiser.state_dict()
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    assert all(torch.equal(v, m.state_dict()[k]) for m, state in zip(frozen, frozen_before) for k, v in state.items())
    first = prepare_trainer(make_sr(family, output=str(tmp_path / "b"), max_train_steps=4, checkpointing_steps=2))
    first.run(stop_after=2)
    resumed = prepare_trainer(make_sr(family, output=str(tmp_path / "b"), max_train_steps=4, checkpointing_steps=2,
                                      resume="latest"))
    resumed.run()
    got = resumed.adapter.denoiser.state_dict()
    assert max((after[k] - got[k]).abs().max().item() for k in after) <= 1e-6


def test_generate_chains_the_upscaler(make_sr, tiny_bases, tmp_path):
    run = train(**make_sr().model_dump(exclude={"config_version"}))
    plain = generate(tiny_bases["sd"], "a photo of a dog", n=2, steps=2, out=tmp_path / "plain")
    big = generate(tiny_bases["sd"], "a photo of a dog", n=2, steps=2, out=tmp_path / "big", upscale=str(run))
    small = Image.open(plain[0])
    assert Image.open(big[0]).size == (2 * small.width, 2 * small.height)
    again = generate(tiny_bases["sd"], "a photo of a dog", n=2, steps=2, out=tmp_path / "again", upscale=str(run))
    assert np.array_equal(np.asarray(Image.open(big[1])), np.asarray(Image.open(again[1])))  # seeded
    other = generate(tiny_bases["sd"], "a photo of a dog", n=2, steps=2, out=tmp_path / "other", upscale=str(run),
                     upscale_guidance=3.0)  # --upscale-guidance reaches the upscaler
    assert not np.array_equal(np.asarray(Image.open(big[1])), np.asarray(Image.open(other[1])))


def test_conditioning_extras_survive_cat_and_rows():
    a = Conditioning(torch.zeros(1, 2, 3)).with_extras(image=torch.ones(1, 3, 4, 4))
    b = Conditioning(torch.ones(1, 2, 3)).with_extras(image=torch.zeros(1, 3, 4, 4))
    both = Conditioning.cat([a, b])
    assert both.extras["image"].shape == (2, 3, 4, 4) and torch.equal(both.rows()[0].extras["image"], a.extras["image"])


def test_a_converted_sd_model_predicts_what_it_predicted(tiny_bases):
    from dreamlock.families.upscale import from_sd

    sd = get_family("sd").load(str(tiny_bases["sd"]))
    noisy, t = torch.randn(2, 4, 16, 16), torch.tensor([10, 500])
    cond = sd.encode_text(["a photo of a dog", "a red star"])
    want = sd.predict(noisy, t, cond)
    up = get_family("sd-upscale")(from_sd(sd.pipe))
    assert up.denoiser.config.in_channels == 7 and up.upscale_factor == 2
    got = up.predict(noisy, t, cond.with_extras(image=torch.rand(2, 3, 16, 16)))
    assert torch.allclose(want, got, atol=1e-5)


def test_the_vae_is_rescaled_to_the_upscalers_fixed_scaling_factor(tiny_bases):
    """StableDiffusionUpscalePipeline forces scaling_factor 0.08333 on its VAE; a converted SD model's
    scaled latents and decoded images must stay what they were."""
    from dreamlock.families.upscale import UPSCALER_SCALING, from_sd

    sd = get_family("sd").load(str(tiny_bases["sd"]))
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    want = sd.encode_images(pixels)
    decoded = sd.vae.decode(want / sd.vae.config.scaling_factor).sample
    assert sd.vae.config.scaling_factor != UPSCALER_SCALING
    up = get_family("sd-upscale")(from_sd(sd.pipe))
    assert up.vae.config.scaling_factor == UPSCALER_SCALING
    assert torch.allclose(up.encode_images(pixels), want, atol=1e-5)
    assert torch.allclose(up.vae.decode(want / UPSCALER_SCALING).sample, decoded, atol=1e-4)
