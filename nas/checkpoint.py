"""Supernet checkpoints: atomic writes, safe loading, rebuilding the supernet.

Checkpoints hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from models import SpikformerSupernet, SupernetConfig

from .data import DatasetSpec
from .space import SearchSpace

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (a temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a supernet checkpoint safely (``weights_only=True``).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not a readable autospk checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"supernet checkpoint {path} does not exist; train one with "
                                "`autospk-study train-supernet`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ValueError(f"supernet checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an autospk supernet checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def supernet_from_checkpoint(
    state: dict[str, Any], device: torch.device | str = "cpu"
) -> tuple[SpikformerSupernet, SearchSpace, DatasetSpec]:
    """Rebuild the trained supernet, its search space and its data set from a checkpoint."""
    space = SearchSpace.from_dict(state["space"])
    spec = SupernetConfig.from_dict(state["supernet"])
    net = SpikformerSupernet(spec)
    net.load_state_dict(state["model"])
    return net.to(device).eval(), space, DatasetSpec.from_dict(state["dataset"])
