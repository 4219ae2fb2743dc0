"""What a host can run: CPU cores, available memory, GPUs, and which device each worker gets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psutil

from models import ConfigError

if TYPE_CHECKING:

    pass


WORKER_MEMORY_GIB = 1.0
"""Memory one worker process needs. A digits worker peaked at 1.03 GiB resident, 0.70 GiB of it
private (the rest is shared library pages); larger data sets and CUDA need more."""


def host_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory new processes can use without swapping (reclaimable caches counted)."""
    return psutil.virtual_memory().available


def worker_limit(*, cores: int, available: int | None) -> tuple[int, str]:
    """The most worker processes a host can run, and what limits it.

    Each worker needs a core (torch's threads are shared out among the workers) and about
    `WORKER_MEMORY_GIB` of memory; one worker is always allowed.

    Args:
        cores: CPU cores this process may run on.
        available: Bytes of memory available (None: unknown, so no limit).

    Returns:
        ``(limit, reason)``, e.g. ``(2, "its 2 CPU cores")``.
    """
    limit, reason = cores, f"its {cores} CPU cores"
    if available is not None:
        by_memory = int(available / (WORKER_MEMORY_GIB * 2**30))
        if by_memory < limit:
            limit = by_memory
            reason = f"{available / 2**30:.1f} GiB available memory at ~{WORKER_MEMORY_GIB:g} GiB per worker"
    return max(1, limit), reason


def assign_devices(workers: int, *, device: str | None = None, devices: Sequence[str] | None = None,
                   gpus: int = 0) -> list[str | None]:
    """The device of each worker on a host: worker i gets ``devices[i mod len(devices)]``.

    Args:
        workers: Worker processes.
        device: One device for every worker (ignored when `devices` is given).
        devices: Devices to deal out in turn, e.g. ``["cuda:0", "cuda:1"]``.
        gpus: GPUs on the host, dealt out in turn when neither `device` nor `devices` is
            given (``cuda:0``, ``cuda:1``, ...); with none, every worker takes the default.

    Returns:
        One device per worker (None: the default, the GPU if any, else the CPU).
    """
    if devices:
        return [devices[i % len(devices)] for i in range(workers)]
    if device is not None:
        return [device] * workers
    if gpus > 0:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [None] * workers


def check_devices(devices: Sequence[str], *, gpus: int) -> None:
    """Refuse device names torch does not know and GPUs this host does not have.

    Raises:
        ConfigError: naming the device and what this host has.
    """
    import torch

    have = f"this host has {gpus} GPU{'s' if gpus != 1 else ''}" + (
        f" (cuda:0 to cuda:{gpus - 1})" if gpus > 1 else " (cuda:0)" if gpus == 1 else "")
    for name in devices:
        try:
            dev = torch.device(name)
        except (RuntimeError, ValueError) as err:
            raise ConfigError(f"device '{name}' is not a torch device ({err}); use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and (dev.index or 0) >= gpus:
            raise ConfigError(f"device '{name}' does not exist: {have}")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
