"""Supernet checkpoints: atomic writes, safe loading, rebuilding the supernet.

Checkpoints hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from models import SpikformerSupernet, SupernetConfig

from .data import DatasetSpec
from .io import atomic_write, load_tensor_file
from .space import SearchSpace

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (see `nas.io.atomic_write`)."""
    atomic_write(path, functools.partial(torch.save, state))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a supernet checkpoint safely (``weights_only=True``).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not a readable autospk checkpoint.
    """
    state = load_tensor_file(path, what="supernet checkpoint",
                             hint="train one with `autospk-study train-supernet`")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an autospk supernet checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def supernet_from_checkpoint(
    state: dict[str, Any], device: torch.device | str = "cpu"
) -> tuple[SpikformerSupernet, SearchSpace, DatasetSpec]:
    """Rebuild the trained supernet, its search space and its data set from a checkpoint."""
    space = SearchSpace.from_dict(state["space"])
    supernet_cfg = SupernetConfig.from_dict(state["supernet"])
    net = SpikformerSupernet(supernet_cfg)
    net.load_state_dict(state["model"])
    return net.to(device).eval(), space, DatasetSpec.from_dict(state["dataset"])
