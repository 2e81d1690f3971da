"""LoRA (and DoRA) through peft on the UNet's attention, optionally on the text encoder."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from dreamlock.methods.base import Method, copy_into, named_trainable
from dreamlock.runs import LORA_FILE


def lora_config(config, target_modules: list[str]) -> LoraConfig:
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha or config.rank,
        lora_dropout=config.lora_dropout,
        use_dora=config.use_dora,
        init_lora_weights="gaussian",
        target_modules=target_modules,
    )


class LoRA(Method):
    name = "lora"

    def __init__(self, adapter, config):
        super().__init__(adapter, config)
        adapter.unet.add_adapter(lora_config(config, config.lora_target_modules))
        if config.train_text_encoder:
            adapter.text_encoder.add_adapter(lora_config(config, config.text_encoder_target_modules))
        if config.gradient_checkpointing:
            adapter.unet.enable_gradient_checkpointing()

    @property
    def trains_text_encoder(self) -> bool:
        return self.config.train_text_encoder

    def trainable_modules(self) -> list[torch.nn.Module]:
        mods = [self.adapter.unet]
        return mods + [self.adapter.text_encoder] if self.config.train_text_encoder else mods

    def _params(self) -> dict[str, torch.Tensor]:
        params = named_trainable(self.adapter.unet, "unet")
        if self.config.train_text_encoder:
            params |= named_trainable(self.adapter.text_encoder, "text_encoder")
        return {n: p for n, p in params.items() if "lora_" in n}

    def param_groups(self) -> list[dict]:
        unet = [p for n, p in self._params().items() if n.startswith("unet.")]
        groups = [{"params": unet, "lr": self.config.learning_rate}]
        if self.config.train_text_encoder:
            te = [p for n, p in self._params().items() if n.startswith("text_encoder.")]
            groups.append({"params": te, "lr": self.config.text_encoder_lr or self.config.learning_rate})
        return groups

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._params().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        copy_into(self._params(), state)

    def save_final(self, final_dir: Path) -> list[str]:
        unet = self.adapter.unet
        kwargs = {
            "unet_lora_layers": get_peft_model_state_dict(unet),
            "unet_lora_adapter_metadata": unet.peft_config["default"].to_dict(),
        }
        if self.config.train_text_encoder:
            te = self.adapter.text_encoder
            # pivotal tuning resizes the vocabulary, and peft would then save the whole token
            # table here ("auto"); the learned rows are saved in their own file instead
            kwargs["text_encoder_lora_layers"] = get_peft_model_state_dict(te, save_embedding_layers=False)
            kwargs["text_encoder_lora_adapter_metadata"] = te.peft_config["default"].to_dict()
        StableDiffusionPipeline.save_lora_weights(final_dir, weight_name=LORA_FILE, safe_serialization=True, **kwargs)
        return []

    @contextmanager
    def _adapters_off(self):
        modules = self.trainable_modules()
        for m in modules:
            m.disable_adapters()
        try:
            yield
        finally:
            for m in modules:
                m.enable_adapters()

    def base_prediction(self, fn):
        """The frozen base model's output: the same modules with the LoRA switched off."""
        with torch.no_grad(), self._adapters_off():
            return fn()
