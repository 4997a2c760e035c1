"""bf16 autocast on CPUs that support it (AVX-512 BF16 / AMX), a no-op elsewhere."""

from __future__ import annotations

import contextlib

import torch


def bf16_supported(device_type: str = "cpu") -> bool:
    """True when bfloat16 autocast runs natively on ``device_type``."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_context(device_type: str, bf16: bool):
    """A context running the forward pass under bf16 autocast when asked and supported.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``.
        bf16: request bf16; ``False`` (or an unsupported CPU) gives fp32.
    """
    if not bf16 or not bf16_supported(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def lightning_precision(bf16: bool, accelerator: str) -> str | None:
    """Lightning's ``precision`` for the choice: ``bf16-mixed`` or ``None`` (engine default)."""
    if bf16 and bf16_supported("cuda" if accelerator == "gpu" else "cpu"):
        return "bf16-mixed"
    return None
