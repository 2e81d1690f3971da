"""DreamBooth full fine-tune: the whole denoiser, optionally the text encoder(s) with their own LR."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamlock.methods.base import Method, component_groups, copy_into, named_trainable_in
from dreamlock.runs import PIPELINE_DIR


class FullFineTune(Method):
    name = "full"
    produces = ("pipeline",)
    supports_ema = True
    summary = "is a full fine-tune"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        self.components = adapter.trainable_components(config.train_text_encoder)
        for module in self.components.values():
            module.requires_grad_(True)
        if config.gradient_checkpointing:
            adapter.denoiser.enable_gradient_checkpointing()
            for text in adapter.text_encoders() if config.train_text_encoder else []:
                text.encoder.gradient_checkpointing_enable()

    @property
    def trains_text_encoder(self) -> bool:
        return self.config.train_text_encoder

    def trainable_modules(self) -> list[torch.nn.Module]:
        return list(self.components.values())

    def _params(self) -> dict[str, torch.Tensor]:
        return named_trainable_in(self.components)

    def param_groups(self) -> list[dict]:
        c = self.config
        return component_groups(self._params(), self.adapter.denoiser_name, c.learning_rate,
                                c.text_encoder_lr or c.learning_rate)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._params().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        copy_into(self._params(), state)

    def save_final(self, final_dir: Path) -> list[str]:
        self.adapter.save_pipeline(final_dir / PIPELINE_DIR)
        return []
