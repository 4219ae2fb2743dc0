"""Files written whole or not at all, and files of tensors read safely.

Every file autospk writes (checkpoints, exported subnets, reports) goes through
`atomic_write`, so an interrupted or failing write never leaves a half-written file where a
good one was. Every file of tensors it reads goes through `load_tensor_file`, which
unpickles only tensors and plain containers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models import ConfigError


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write `path` whole or not at all.

    `write` fills a temporary file in the same folder (so the final ``os.replace`` stays on
    one file system and is atomic). If `write` raises, the temporary file is removed and an
    existing `path` is left untouched.

    Args:
        path: The file to write; its folder is created if missing.
        write: Called with the temporary file's path; writes the complete file there.

    Returns:
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_tensor_file(path: str | Path, *, what: str, hint: str) -> Any:
    """Read a file written by `torch.save`, unpickling only tensors and plain containers.

    Args:
        path: The file.
        what: What the file should hold, for the error messages (``"supernet checkpoint"``).
        hint: How to make one, added to the error for a missing file.

    Returns:
        The file's content, with every tensor on the CPU.

    Raises:
        FileNotFoundError: if `path` is not a file.
        ConfigError: if the file cannot be read as tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ConfigError(f"{path} is corrupt or not a {what} ({type(err).__name__})") from None
