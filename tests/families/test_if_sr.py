"""DeepFloyd IF stage II (``if-sr``, pixel space, no VAE) on a tiny random model (plumbing): it
loads without a VAE, its denoiser call matches what IFSuperResolutionPipeline does, and
`generate --upscale` chains a base model and it at the upscale factor. Training and resume:
test_upscale.py (both upscaler families)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dreamlock.families import detect_family, get_family
from dreamlock.generation import generate
from dreamlock.training.api import train


def test_a_pixel_space_model_without_a_vae_loads_as_if_stage_two(tiny_bases):
    assert detect_family(tiny_bases["if-sr"]) == "if-sr"
    adapter = get_family("if-sr").load(str(tiny_bases["if-sr"]))
    assert adapter.vae is None and adapter.vae_scale_factor == 1 and adapter.native_resolution == 32
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(adapter.encode_images(pixels), pixels)
    low = adapter.encode_condition(pixels)
    assert low.shape == (1, 3, 8, 8) and torch.allclose(low[0, :, 0, 0], pixels[0, :, :4, :4].mean(dim=(1, 2)))


def test_predict_is_the_pipelines_noise_half_of_the_unet_output(tiny_bases):
    adapter = get_family("if-sr").load(str(tiny_bases["if-sr"]))
    pipe, noisy, t = adapter.pipe, torch.randn(2, 3, 32, 32), torch.tensor([10, 700])
    low = torch.rand(2, 3, 8, 8) * 2 - 1
    cond = adapter.encode_text(["A photo of SKS dog", "a red star"]).with_extras(image=low)
    embeds, _ = pipe.encode_prompt(["a photo of sks dog", "a red star"], do_classifier_free_guidance=False,
                                   clean_caption=False)
    assert torch.allclose(cond.embeds, embeds, atol=1e-6)  # T5 as the pipeline runs it (lower-cased)
    torch.manual_seed(0)
    got = adapter.predict(noisy, t, cond)
    torch.manual_seed(0)
    levels = torch.randint(0, 1000, (2,))
    up = F.interpolate(low, (32, 32), mode="bilinear", align_corners=True)
    up = pipe.image_noising_scheduler.add_noise(up, torch.randn(up.shape), levels)
    want = pipe.unet(torch.cat([noisy, up], dim=1), t, encoder_hidden_states=embeds, class_labels=levels).sample
    assert want.shape[1] == 6 and torch.allclose(got, want[:, :3], atol=1e-5)


def test_generate_chains_if_stage_two_at_its_factor(make_sr, tiny_bases, tmp_path):
    run = train(**make_sr("if-sr").model_dump(exclude={"config_version"}))
    assert detect_family(run / "final" / "pipeline") == "if-sr"
    plain = generate(tiny_bases["sd"], "a photo of a dog", n=1, steps=2, out=tmp_path / "plain")
    big = generate(tiny_bases["sd"], "a photo of a dog", n=1, steps=2, out=tmp_path / "big", upscale=str(run))
    small = Image.open(plain[0])
    assert Image.open(big[0]).size == (4 * small.width, 4 * small.height)
    assert np.asarray(Image.open(big[0])).std() > 0  # an image, not a blank
