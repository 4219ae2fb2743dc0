"""What a host can run: CPU cores, available memory, GPUs, and which device each worker gets."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from models import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")


WORKER_MEMORY_GIB = 1.0
"""Memory one worker process needs. A digits worker peaked at 1.03 GiB resident, 0.70 GiB of it
private (the rest is shared library pages); larger data sets and CUDA need more."""


def host_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _own_cgroup() -> Path | None:
    """This process's cgroup (v2) folder, or None where there is none to read."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return CGROUP_ROOT / line[3:].lstrip("/")
    except OSError:
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_chain() -> list[Path]:
    """This process's cgroup folders that may limit its memory: v2's own cgroup and every one
    above it, and v1's memory controller."""
    chain = []
    folder = _own_cgroup()
    while folder is not None and folder != CGROUP_ROOT.parent and CGROUP_ROOT in (folder, *folder.parents):
        chain.append(folder)
        folder = folder.parent if folder != CGROUP_ROOT else None
    return [*chain, CGROUP_ROOT / "memory"]


def cgroup_available(cgroup: Path | None = None) -> int | None:
    """Bytes a memory-limited cgroup (a container, a SLURM job) still allows: the least of
    limit - use over the cgroups that set a limit (v2's ``memory.max``, v1's
    ``memory.limit_in_bytes``). None where no cgroup limits memory.

    Args:
        cgroup: One cgroup folder to read (default: this process's cgroup and those above it).
    """
    room = []
    for folder in [cgroup] if cgroup is not None else _cgroup_chain():
        for limit_file, use_file in (("memory.max", "memory.current"),
                                     ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            limit, used = _read_int(folder / limit_file), _read_int(folder / use_file)
            if limit is not None and used is not None and limit < 2**60:  # v1 writes ~2^63 for none
                room.append(max(0, limit - used))
    return min(room) if room else None


def available_memory(*, cgroup: Path | None = None) -> int | None:
    """Bytes of memory new processes can use without swapping (reclaimable caches counted),
    within this process's cgroup memory limit where one is set (`cgroup_available`)."""
    available = psutil.virtual_memory().available
    limited = cgroup_available(cgroup)
    return available if limited is None else min(available, limited)


def oom_kills(cgroup: Path | None = None) -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's cgroup (v2's
    ``memory.events``), or None where that is not counted."""
    folder = cgroup if cgroup is not None else _own_cgroup()
    if folder is None:
        return None
    try:
        for line in (folder / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


CUDA_CONTEXT_BYTES = 512 * 2**20
"""Device memory a process's CUDA context takes besides its tensors (torch does not count it)."""


def gpu_worker_limit(*, free_bytes: int, worker_bytes: int) -> int:
    """How many workers of `worker_bytes` each fit in `free_bytes` of a GPU's memory."""
    return free_bytes // max(1, worker_bytes)


def check_gpu_memory(placement: Sequence[str | None], *, free: Mapping[str, int], worker_bytes: int) -> str | None:
    """Why the workers placed on some GPU do not fit its free memory, in one line; None if they fit.

    Args:
        placement: Each worker's device.
        free: Free bytes of each GPU named in `placement`.
        worker_bytes: Device memory one worker needs (the largest subnet's evaluation, measured,
            and its CUDA context).
    """
    gib = 2**30
    for device in sorted({d for d in placement if d is not None and d in free}):
        count = sum(d == device for d in placement)
        fit = gpu_worker_limit(free_bytes=free[device], worker_bytes=worker_bytes)
        if count > fit:
            return (f"{count} workers on {device} need {count * worker_bytes / gib:.1f} GiB for the largest subnet's "
                    f"evaluation ({worker_bytes / gib:.1f} GiB each, measured) but {device} has "
                    f"{free[device] / gib:.1f} GiB free: run at most {fit} there")
    return None


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


def check_gpu_workers(ctx: Any, settings: Any, placement: Sequence[str | None]) -> None:
    """Refuse, before any worker starts, more workers on a GPU than its free memory holds for the
    largest subnet's evaluation (measured in a process of its own: `builders.gpu_memory`)."""
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from .builders import gpu_memory

    named = [f"cuda:{torch.device(d).index or 0}" if d is not None and torch.device(d).type == "cuda" else None
             for d in placement]
    gpus = sorted({d for d in named if d is not None})
    if not gpus:
        return
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        worker_bytes, free = pool.submit(gpu_memory, settings, gpus).result()
    message = check_gpu_memory(named, free=free, worker_bytes=worker_bytes)
    if message is not None:
        raise ConfigError(message)
