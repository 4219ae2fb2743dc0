"""Where to run when the caller does not say."""

from __future__ import annotations

import torch


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a `torch.device`; None means the GPU if there is one, else the CPU.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ..., a `torch.device` or None.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
