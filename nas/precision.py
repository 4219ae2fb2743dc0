"""Numeric precision of training and evaluation: fp32, bf16 or fp16 autocast.

Under bf16 or fp16, matrix products and convolutions run in the lower precision
(`torch.autocast`) and everything autocast keeps in fp32 (losses, softmax, norms) stays
there; weights and optimizer state stay fp32. Spikes stay exact: a LIF neuron emits the
Heaviside step of its membrane potential, 0 or 1 in any precision, and the energy monitor
counts them in float64. fp16 training scales the loss (`torch.amp.GradScaler`) so that small
gradients do not underflow; bf16 has fp32's exponent range and needs no scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from models import ConfigError

from .settings import PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_precision(device: torch.device) -> str:
    """bf16 on a GPU that supports it, else fp32 (CPUs run bf16 slower than fp32, mostly)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def check_precision(precision: str | None, device: torch.device) -> str:
    """`precision`, or the device's default for None.

    Raises:
        ConfigError: for an unknown precision, or bf16 on a GPU without bf16 support.
    """
    if precision is None:
        return default_precision(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose from {list(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{torch.cuda.get_device_name(device)} does not support bf16; use fp16 or fp32")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Run the block in `precision` on `device` (fp32: as is)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only (with it disabled, its calls pass through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
