"""DreamBooth full fine-tune: the whole UNet, optionally the text encoder with its own LR."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamlock.methods.base import Method, copy_into, named_trainable
from dreamlock.runs import PIPELINE_DIR


class FullFineTune(Method):
    name = "full"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        adapter.unet.requires_grad_(True)
        if config.train_text_encoder:
            adapter.text_encoder.requires_grad_(True)
        if config.gradient_checkpointing:
            adapter.unet.enable_gradient_checkpointing()
            if config.train_text_encoder:
                adapter.text_encoder.gradient_checkpointing_enable()

    @property
    def trains_text_encoder(self) -> bool:
        return self.config.train_text_encoder

    def trainable_modules(self) -> list[torch.nn.Module]:
        mods = [self.adapter.unet]
        return mods + [self.adapter.text_encoder] if self.config.train_text_encoder else mods

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(self.adapter.unet.parameters()), "lr": self.config.learning_rate}]
        if self.config.train_text_encoder:
            lr = self.config.text_encoder_lr or self.config.learning_rate
            groups.append({"params": list(self.adapter.text_encoder.parameters()), "lr": lr})
        return groups

    def _params(self) -> dict[str, torch.Tensor]:
        params = named_trainable(self.adapter.unet, "unet")
        if self.config.train_text_encoder:
            params |= named_trainable(self.adapter.text_encoder, "text_encoder")
        return params

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._params().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        copy_into(self._params(), state)

    def save_final(self, final_dir: Path) -> list[str]:
        self.adapter.save_pipeline(final_dir / PIPELINE_DIR)
        return []
