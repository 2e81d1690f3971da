"""The training loop: one optimizer step = ``gradient_accumulation_steps`` micro-batches.

All randomness of a step (batch choice, flips, caption dropout, noise, timesteps, dropout layers)
comes from generators seeded by (seed, step), so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from dreamlock.families.base import ModelFamily
from dreamlock.families.conditioning import IMAGE, Conditioning
from dreamlock.methods.base import Method
from dreamlock.progress import Tracker, progress, warn
from dreamlock.training import checkpoint as ckpt
from dreamlock.training.config import TrainConfig
from dreamlock.training.data import PromptEncoder, TrainData
from dreamlock.training.memory import check_gpu_memory, out_of_memory
from dreamlock.training.dataset import step_generator
from dreamlock.training.prior import per_sample_mse, prior_preservation_loss
from dreamlock.training.sampling import save_samples


def make_optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW; with ``use_8bit_adam``, bitsandbytes' AdamW8bit (CUDA, and the CPU since bitsandbytes
    0.49), else torch's with a warning."""
    kwargs = dict(betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    if config.use_8bit_adam:
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(groups, **kwargs)
        except (ImportError, RuntimeError, AttributeError) as e:
            warn(f"use_8bit_adam: bitsandbytes is not usable here ({type(e).__name__}); training with torch's "
                 "AdamW (pip install 'bitsandbytes>=0.49')")
    return torch.optim.AdamW(groups, **kwargs)


class Trainer:
    def __init__(self, config: TrainConfig, adapter: ModelFamily, method: Method, data: TrainData,
                 prompts: PromptEncoder, run_dir: Path, accelerator: Accelerator):
        self.config, self.adapter, self.method, self.data = config, adapter, method, data
        self.prompts, self.run_dir, self.accelerator = prompts, run_dir, accelerator
        groups = method.param_groups()
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = make_optimizer(config, groups)
        self.scheduler = get_scheduler(config.lr_scheduler, self.optimizer, num_warmup_steps=config.lr_warmup_steps,
                                       num_training_steps=config.max_train_steps)
        self.optimizer = accelerator.prepare(self.optimizer)
        check_gpu_memory(self.params, config.use_8bit_adam, accelerator.device)
        self.ema = EMAModel(adapter.denoiser.parameters(), decay=config.ema_decay) if config.use_ema else None
        self.step = 0
        self.selector = None  # a training.selection.Selector when select_best / early_stop_patience is set
        self.stopped_early = False
        self.startup: dict[str, float] = {}  # start-up seconds per phase (training/timing.py), set by prepare_trainer

    # ---- one step ------------------------------------------------------------------------
    def _noise(self, latents: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(latents.shape, generator=gen)
        if self.config.noise_offset > 0:
            noise += self.config.noise_offset * torch.randn(latents.shape[:2] + (1, 1), generator=gen)
        t = self.adapter.objective.sample_t(latents.shape[0], gen)
        return noise, t

    def micro_loss(self, number: int, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Loss of one micro-batch (instance + optional class examples)."""
        device = self.accelerator.device
        batch = self.data.batch(number, gen)
        n_inst = batch.n_instance
        noise, t = self._noise(batch.latents, gen)
        latents, noise, t, meta = batch.latents.to(device), noise.to(device), t.to(device), batch.meta.to(device)
        pixel_weight = batch.loss_weight.to(device) if batch.loss_weight is not None else None
        objective = self.adapter.objective
        noisy = objective.add_noise(latents, noise, t)
        target = objective.target(latents, noise, t)
        text = self.prompts([self.method.rewrite_prompt(p) for p in batch.prompts])
        if batch.condition is not None:  # the image to edit (InstructPix2Pix) rides with the instruction
            text = text.with_extras(**{IMAGE: batch.condition.to(device)})
        if self.config.with_prior_preservation and self.config.prior_mode == "prior_prediction":
            noisy, t, text, target, meta = self._add_prior_prediction(noisy, t, text, target, meta)
            if pixel_weight is not None:  # the base's prediction counts everywhere
                pixel_weight = torch.cat([pixel_weight, torch.ones_like(pixel_weight)])
        with self.accelerator.autocast():
            pred = self.adapter.predict(noisy, t, text, meta)
        weights = objective.weights(t, self.config.snr_gamma)
        if n_inst < pred.shape[0]:
            loss, prior = prior_preservation_loss(pred, target, n_inst, self.config.prior_loss_weight, weights,
                                                  pixel_weight)
            return loss, {"loss": loss.item(), "prior_loss": prior.item()}
        losses = per_sample_mse(pred, target, pixel_weight)
        loss = (losses * weights).mean() if weights is not None else losses.mean()
        return loss, {"loss": loss.item()}

    def _add_prior_prediction(self, noisy, t, text, target, meta):
        """Class-image-free prior: on the same noisy latents, the class prompt's prediction must
        match what the base model (adapter off) predicts for it."""
        klass = self.config.effective_class_prompt
        n = noisy.shape[0]

        def base():
            with self.accelerator.autocast():
                base_text = self.prompts([klass] * n)
                return self.adapter.predict(noisy, t, base_text, meta).float()

        base_pred = self.method.base_prediction(base)
        class_text = self.prompts([klass] * n)
        return (torch.cat([noisy, noisy]), torch.cat([t, t]), Conditioning.cat([text, class_text]),
                torch.cat([target, base_pred]), torch.cat([meta, meta]))

    def optimizer_step(self) -> dict:
        accum = self.config.gradient_accumulation_steps
        logs: dict[str, float] = {}
        torch.manual_seed(step_generator(self.config.seed, self.step, salt=3).initial_seed())
        for micro in range(accum):
            gen = step_generator(self.config.seed, self.step, salt=10 + micro)
            loss, parts = self.micro_loss(self.step * accum + micro, gen)
            self.accelerator.backward(loss / accum)
            for k, v in parts.items():
                logs[k] = logs.get(k, 0.0) + v / accum
        if not math.isfinite(logs["loss"]):
            raise self._not_finite(logs["loss"])
        self.accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_optimizer_step()
        if self.ema is not None:
            self.ema.step(self.adapter.denoiser.parameters())
        self.step += 1
        logs["lr"] = self.scheduler.get_last_lr()[0]
        return logs

    def _not_finite(self, loss: float):
        """The error for a NaN / inf loss: nothing of this step was applied; where to resume from."""
        from dreamlock.errors import WorkError

        found = ckpt.checkpoint_dirs(self.run_dir)
        kept = (f"the weights were not updated, and {found[-1]} is intact (resume from it with --resume latest)"
                if found else "the weights were not updated (no checkpoint was saved yet)")
        return WorkError(f"loss became {loss} at step {self.step}; {kept}; lower learning_rate, set "
                         "mixed_precision='no', or lower max_grad_norm, then train again")

    # ---- checkpoints ---------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = dict(self.method.trainable_state())
        if self.ema is not None:
            tensors |= {f"ema.{i}": p for i, p in enumerate(self.ema.shadow_params)}
        return tensors

    def save_checkpoint(self) -> Path:
        extra = {"ema_step": self.ema.optimization_step} if self.ema is not None else {}
        keep = {self.selector.chosen} if self.selector is not None and self.selector.chosen else set()
        return ckpt.save_checkpoint(self.run_dir, self.step, self._tensors(), self.optimizer, self.scheduler,
                                    extra=extra, limit=self.config.checkpoints_total_limit, keep=keep)

    def resume(self, path: Path) -> None:
        self.step, tensors, extra = ckpt.load_checkpoint(path, self.optimizer, self.scheduler)
        state, ema = ckpt.split_ema(tensors)
        self.method.load_trainable_state(state)
        if self.ema is not None:
            for p, shadow in zip(self.ema.shadow_params, ema, strict=True):
                p.copy_(shadow)
            self.ema.optimization_step = extra["ema_step"]

    # ---- the run -------------------------------------------------------------------------
    def _sample(self) -> None:
        if not self.config.validation_prompt:
            return
        prompts = [self.method.rewrite_prompt(p) for p in self.config.validation_prompt]
        modules = self.method.trainable_modules()
        for m in modules:
            m.eval()
        with self.adapter.unparked():
            save_samples(self.adapter.sampling_pipeline(), prompts, self.config, self.run_dir / "samples", self.step)
        for m in modules:
            m.train()

    def _periodic(self) -> None:
        c = self.config
        at_checkpoint = c.checkpointing_steps and self.step % c.checkpointing_steps == 0
        if at_checkpoint and (self.step < c.max_train_steps or self.selector is not None):
            self.save_checkpoint()  # with a selector the last step is a candidate too, so it is kept as one
        if at_checkpoint and self.selector is not None:
            self.selector.record(self.step)
            self.stopped_early = self.step < c.max_train_steps and self.selector.should_stop()
        if c.validation_steps and self.step % c.validation_steps == 0:
            self._sample()

    def run(self, stop_after: int | None = None) -> None:
        """Train to ``max_train_steps`` (or stop early after ``stop_after`` steps, for tests)."""
        c = self.config
        deadline = time.monotonic() + 60 * c.max_train_minutes if c.max_train_minutes else None
        for m in self.method.trainable_modules():
            m.train()
        try:
            with progress("train", c.max_train_steps, self.step, transient=False) as bar:
                self._steps(bar, deadline, stop_after)
        except torch.OutOfMemoryError:
            raise out_of_memory(self.step) from None
        for m in self.method.trainable_modules():
            m.eval()

    def _steps(self, bar: Tracker, deadline: float | None, stop_after: int | None) -> None:
        c = self.config
        if self.selector is not None and not self.selector.has(self.step) and self.step == 0:
            self.selector.record(0)  # the base model: the reference for class drift
        while (self.step < c.max_train_steps and not self.stopped_early
               and (stop_after is None or self.step < stop_after)):
            logs = self.optimizer_step()
            bar.update(self.step, f"loss {logs['loss']:.4f}")
            if self.step % c.logging_steps == 0 or self.step == c.max_train_steps:
                self.accelerator.log(logs, step=self.step)
            self._periodic()
            if deadline is not None and time.monotonic() > deadline:
                break

    def use_ema_weights(self) -> None:
        if self.ema is not None:
            self.ema.copy_to(self.adapter.denoiser.parameters())
