"""What the flow-matching families (SD3, FLUX.1) share: a transformer denoiser, the rectified-flow
objective with diffusers' timestep sampling and loss weighting, the flow Euler sampler, and latent
sizes set by the transformer's patches rather than by UNet levels."""

from __future__ import annotations

from typing import ClassVar

from diffusers import FlowMatchEulerDiscreteScheduler

from dreamlock.families.base import ModelFamily
from dreamlock.families.objectives import FlowMatchObjective

#: LoRA targets of MMDiT-style joint attention: the image stream's and the text stream's projections
JOINT_ATTENTION_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
                           "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out")


class FlowFamily(ModelFamily):
    denoiser_name = "transformer"
    denoiser_lora_targets = JOINT_ATTENTION_TARGETS
    objective_kind = "flow"
    #: the timestep sampling / loss weighting a run gets without ``weighting_scheme``
    default_weighting: ClassVar[str] = "none"
    #: T5 sequence length for training and sampling (the pipeline's default ``max_sequence_length``)
    max_sequence_length: ClassVar[int] = 256

    @classmethod
    def make_objective(cls, scheduler_config: dict) -> FlowMatchObjective:
        return FlowMatchObjective(scheduler_config, cls.default_weighting)

    def configure(self, config) -> None:
        self.objective = FlowMatchObjective(self.pipe.scheduler.config, config.weighting_scheme or self.default_weighting,
                                            config.logit_mean, config.logit_std, config.mode_scale)

    @staticmethod
    def sampling_scheduler(scheduler_config: dict):
        """The flow Euler sampler the family ships with."""
        return FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)

    @property
    def patch_size(self) -> int:
        return 2

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * self.patch_size
