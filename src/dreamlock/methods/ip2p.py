"""InstructPix2Pix: train an image editor on (image before, instruction, image after) triplets.

The whole UNet trains, as in the InstructPix2Pix paper and diffusers' ``train_instruct_pix2pix.py``.
The method runs on the ``ip2p`` family: an InstructPix2Pix model is fine-tuned as it is; an SD 1.x /
2.x model is first converted (its UNet's input widened to 8 channels, the new ones at zero), which
is how an editor is made from a text-to-image model. The data folder holds the edited images with
their instructions as captions, and the images before the edit under ``input/`` by the same name.
"""

from __future__ import annotations

from dreamlock.methods.full import FullFineTune


class InstructPix2Pix(FullFineTune):
    name = "ip2p"
    families = ("ip2p",)
    prior_modes = ()
    summary = "trains an image editor (InstructPix2Pix)"
