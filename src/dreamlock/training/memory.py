"""GPU memory: a check before the first step that refuses with advice, and out-of-memory errors
turned into that advice instead of a traceback.

The check counts what is certain before a step runs: what is already on the GPU (weights, cached
latents and prompts), plus gradients and AdamW states of the trainable parameters (fp32: 4 + 8
bytes each; 8-bit Adam: 4 + 2). Activations come on top and depend on resolution, batch and
gradient checkpointing, so a run that passes the check can still run out; then the first step's
error says the same things.
"""

from __future__ import annotations

import torch

from dreamlock.errors import UserError

ADVICE = ("lower train_batch_size or resolution, set gradient_checkpointing, use_8bit_adam, a lower rank, "
          "drop_t5 (SD3), quantize_base='nf4' (LoRA), or a memory_preset for your card")
GIB = 1024**3


def training_state_bytes(params: list[torch.Tensor], eight_bit_adam: bool) -> int:
    """Gradients and optimizer states of the trainable parameters (fp32 master weights)."""
    n = sum(p.numel() for p in params)
    return n * (4 + (2 if eight_bit_adam else 8))


def shortfall(in_use: int, state: int, free: int, total: int) -> str | None:
    """The refusal, or None when the weights and training state fit (with 5% of the card spare)."""
    need = in_use + state
    if need <= in_use + free - 0.05 * total:
        return None
    return (f"training needs at least {need / GIB:.1f} GiB of GPU memory before activations (weights and data "
            f"{in_use / GIB:.1f}, gradients and optimizer states {state / GIB:.1f}), and the GPU has "
            f"{(in_use + free) / GIB:.1f} GiB for it; {ADVICE}")


def check_gpu_memory(params: list[torch.Tensor], eight_bit_adam: bool, device: torch.device) -> None:
    """Refuse on CUDA when the run cannot fit; nothing to check on the CPU."""
    if device.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(device)
    message = shortfall(torch.cuda.memory_allocated(device), training_state_bytes(params, eight_bit_adam), free, total)
    if message:
        raise UserError(message)


def out_of_memory(step: int) -> UserError:
    """The error a CUDA out-of-memory becomes: where it happened and what to change."""
    return UserError(f"the GPU ran out of memory at step {step}; {ADVICE}")
