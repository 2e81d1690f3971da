"""The super-resolution stage: diffusers' ``StableDiffusionUpscalePipeline`` architecture (SD x4 upscaler).

The UNet takes the noisy latents and, beside them, the low-resolution image itself (pixels, the
size of the latents: the upscale factor is the VAE's downsampling), noised to a random
``noise_level`` by the pipeline's ``low_res_scheduler``; the noise level is the UNet's class label.
Training pairs are made from the subject's own images: the image is the target, its downscaled
copy the condition (``ModelFamily.encode_condition``), so the stage learns to redraw the subject's fine detail
from a small picture of it.
"""

from __future__ import annotations

import math

import torch
from diffusers import StableDiffusionUpscalePipeline

from dreamlock.families.conditioning import IMAGE, Conditioning
from dreamlock.families.ip2p import widen_conv_in
from dreamlock.families.sd import SDAdapter

#: the noise augmentation range of diffusers' x4 upscaler (``max_noise_level``)
MAX_NOISE_LEVEL = 350


#: the VAE scaling factor ``StableDiffusionUpscalePipeline`` forces on any VAE it is given (the x4
#: upscaler's); another VAE must have its latent space rescaled to it (``rescale_latents``)
UPSCALER_SCALING = 0.08333


def rescale_latents(vae, target: float = UPSCALER_SCALING) -> None:
    """Make ``vae``'s latents times ``target`` what its latents times its own scaling factor were:
    the encoder's mean is multiplied by k = old / target (its log-variance shifted by 2 ln k) and the
    decoder's first convolution divided by k, so encode -> decode is unchanged."""
    k = vae.config.scaling_factor / target
    if abs(k - 1.0) < 1e-9:
        return
    if vae.quant_conv is None or vae.post_quant_conv is None:
        raise ValueError("this VAE has no quant convolutions to rescale its latents with")
    c = vae.config.latent_channels
    with torch.no_grad():
        vae.quant_conv.weight[:c] *= k
        vae.quant_conv.bias[:c] *= k
        vae.quant_conv.bias[c:] += 2 * math.log(k)
        vae.post_quant_conv.weight /= k
    vae.register_to_config(scaling_factor=target)


def from_sd(pipe) -> StableDiffusionUpscalePipeline:
    """An upscaler over an SD pipeline's components: the UNet's input widened by the 3 image channels
    (zero weights) and a noise-level class embedding added (zeros), so that it starts as the SD model
    (which ignores the image) and learns to use it; the upscale factor is the VAE's. The VAE's latent
    space is rescaled to the pipeline's fixed scaling factor (without this, the toy VAE's latents
    would have been used at 1/15 of their scale, and the first toy upscaler learned nothing)."""
    from diffusers import DDPMScheduler

    unet = pipe.unet
    rescale_latents(pipe.vae)  # the pipeline would force 0.08333 on the VAE's own scaling factor
    widen_conv_in(unet, unet.config.out_channels + 3)
    if unet.class_embedding is None:
        unet.class_embedding = torch.nn.Embedding(MAX_NOISE_LEVEL + 1, unet.time_embedding.linear_2.out_features)
        torch.nn.init.zeros_(unet.class_embedding.weight)
        unet.register_to_config(num_class_embeds=MAX_NOISE_LEVEL + 1)
    low_res = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    return StableDiffusionUpscalePipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                          unet=unet, low_res_scheduler=low_res, scheduler=pipe.scheduler,
                                          max_noise_level=MAX_NOISE_LEVEL)


class UpscaleAdapter(SDAdapter):
    name = "sd-upscale"
    pipeline_class = StableDiffusionUpscalePipeline
    condition_kind = "low_res"
    default_guidance = 9.0  # diffusers' default for the x4 upscaler
    #: the noise added to the low-resolution image when sampling (diffusers' default)
    sampling_noise_level = 20
    pipeline_kwargs = {}
    load_kwargs = {"safety_checker": None}
    usage = ("an upscaler: it redraws a low-resolution image at a higher one; chain it after a text-to-image "
             "model with `dreamlock generate BASE --prompt ... --upscale UPSCALER`")
    converts_from = ("sd",)
    convert = staticmethod(from_sd)

    @property
    def upscale_factor(self) -> int:
        return self.vae_scale_factor

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        """Noise augmentation as the pipeline samples it: a random noise level per example (torch's
        generator, which the loop seeds per step), added by the low-resolution scheduler."""
        image = cond.extras[IMAGE].to(noisy.device, noisy.dtype)
        levels = torch.randint(0, self.pipe.config.max_noise_level + 1, (image.shape[0],)).to(noisy.device)
        low = self.pipe.low_res_scheduler.add_noise(image, torch.randn(image.shape).to(image), levels)
        return self.denoiser(torch.cat([noisy, low], dim=1), t, encoder_hidden_states=cond.embeds,
                             class_labels=levels).sample
