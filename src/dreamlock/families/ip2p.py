"""InstructPix2Pix: an SD 1.x / 2.x model that edits an image by instruction.

Its UNet takes 8 input channels: the noisy latents (4) and the latents of the image to edit (4,
the VAE's mode, unscaled, as diffusers' ``StableDiffusionInstructPix2PixPipeline`` makes them).
Training pairs come as (image before, instruction, image after); the image before travels in the
Conditioning's ``extras["image"]``, next to the instruction's text embeddings.

A plain SD model becomes an InstructPix2Pix model by widening the UNet's first convolution with
zero weights for the new channels (the InstructPix2Pix paper's initialisation): at step 0 it
predicts exactly what the SD model predicts, then learns to use the image.
"""

from __future__ import annotations

import torch
from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

from dreamlock.families.conditioning import IMAGE, Conditioning
from dreamlock.families.sd import SDAdapter

def widen_conv_in(unet, channels: int) -> None:
    """Give ``unet`` ``channels`` input channels; the new ones start at zero weight."""
    old = unet.conv_in
    if old.in_channels == channels:
        return
    new = torch.nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                          dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=channels)


def from_sd(pipe: StableDiffusionPipeline) -> StableDiffusionInstructPix2PixPipeline:
    """An InstructPix2Pix pipeline over an SD pipeline's components (its UNet widened in place)."""
    widen_conv_in(pipe.unet, 2 * pipe.unet.config.out_channels)
    parts = {k: v for k, v in pipe.components.items() if k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    return StableDiffusionInstructPix2PixPipeline(**parts, safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)


class IP2PAdapter(SDAdapter):
    name = "ip2p"
    pipeline_class = StableDiffusionInstructPix2PixPipeline
    condition_kind = "image"
    default_guidance = 7.5
    #: how strongly samples follow the image to edit (diffusers' default)
    default_image_guidance = 1.5
    usage = ("an image editor (InstructPix2Pix): it draws from an image, not from a prompt alone; use "
             "`dreamlock edit MODEL IMAGE --instruction ...`")
    converts_from = ("sd",)
    convert = staticmethod(from_sd)

    @torch.no_grad()
    def encode_condition(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image to edit, pixels in [-1, 1] -> its latents as the pipeline makes them (mode, unscaled)."""
        vae_dtype = next(self.vae.parameters()).dtype
        return self.vae.encode(pixels.to(self.vae.device, vae_dtype)).latent_dist.mode().float()

    def predict(self, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        image = cond.extras[IMAGE].to(noisy.device, noisy.dtype)
        return self.denoiser(torch.cat([noisy, image], dim=1), t, encoder_hidden_states=cond.embeds).sample
