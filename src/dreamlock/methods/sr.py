"""The super-resolution stage fine-tune: teach an upscaler the subject's fine detail.

The whole UNet of an upscaler (``sd-upscale`` family: diffusers' ``StableDiffusionUpscalePipeline``;
``if-sr``: DeepFloyd IF stage II, ``IFSuperResolutionPipeline``) trains on pairs made from the subject's own images: each image is the target, its copy downscaled
by the upscale factor the condition (``families/upscale.py``). The data folder is the same as for
DreamBooth (images with optional captions), at the upscaler's output resolution. An SD model given
as the base is converted first (``families/upscale.py``), which is how the toy upscaler is made.
"""

from __future__ import annotations

from dreamlock.methods.full import FullFineTune


class SuperResolution(FullFineTune):
    name = "sr"
    families = ("sd-upscale", "if-sr")
    prior_modes = ()
    summary = "fine-tunes an upscaler (super-resolution stage)"
