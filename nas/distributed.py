"""Data-parallel training under torchrun: joining the process group, and this process's rank."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from .device import default_device


@contextlib.contextmanager
def torchrun_process_group(device: torch.device | str | None = None) -> Iterator[None]:
    """Join the data-parallel process group when started by torchrun, and leave it after.

    Outside torchrun (no ``LOCAL_RANK`` in the environment) it does nothing. The backend is
    NCCL for CUDA devices and gloo otherwise.
    """
    if "LOCAL_RANK" not in os.environ or dist.is_initialized():
        yield
        return
    if default_device(device).type == "cuda":
        # One GPU per process: plain "cuda" then means this rank's GPU.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank in the process group; 0 outside one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world() -> int:
    """The number of processes in the process group; 1 outside one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
