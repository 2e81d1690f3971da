"""Pick the compute precision for the machine at hand.

On CPUs, bf16 autocast only pays off with AMX tiles (measured: an SD1.5-size UNet step 1.5x faster
on a Xeon with AMX-BF16); on AVX2/AVX-512 machines without AMX, bf16 matmuls ran over 100x slower
than fp32. So "auto" means: CUDA -> bf16 if supported else fp16; CPU -> bf16 only with AMX, else fp32.
"""

from __future__ import annotations

import torch

from dreamlock.errors import UserError


def cpu_has_amx() -> bool:
    probe = getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None)
    if probe is not None and probe():
        return True
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def training_device_type() -> str:
    """Where training runs: "cuda" when a GPU is visible, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def choose_base_dtype(requested: str, device_type: str, trains_base: bool) -> torch.dtype:
    """The frozen base's weight dtype. "auto": on CUDA half precision (bf16 where supported) unless
    the method trains the whole denoiser (its master weights stay fp32); on the CPU fp32."""
    if requested != "auto":
        return DTYPES[requested]
    if device_type == "cuda" and not trains_base:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def choose_precision(requested: str, device_type: str) -> str:
    """Return accelerate's ``mixed_precision`` value: "no", "fp16" or "bf16"."""
    if requested == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_amx() else "no"
    if requested == "fp16" and device_type == "cpu":
        raise UserError("mixed_precision='fp16' needs a GPU; on CPU use 'auto', 'bf16' (with AMX) or 'no'")
    return requested
