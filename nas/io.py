"""Files written whole or not at all, and files of tensors read safely.

Every file autospk writes (checkpoints, exported subnets, reports) goes through
`atomic_write`, so an interrupted or failing write never leaves a half-written file where a
good one was, and the temporary files of writers killed mid-write do not pile up. Every file
of tensors it reads goes through `load_tensor_file`, which unpickles only tensors and plain
containers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models import ConfigError


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write `path` whole or not at all.

    `write` fills a temporary file ``.NAME.tmpPID`` in the same folder (so the final
    ``os.replace`` stays on one file system and is atomic). If `write` raises, the temporary
    file is removed and an existing `path` is left untouched. A process killed mid-write
    cannot remove its temporary file, so every write first removes the temporary files of
    `path` whose process is no longer running on this host.

    Args:
        path: The file to write; its folder is created if missing.
        write: Called with the temporary file's path; writes the complete file there.

    Returns:
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _remove_stale_temp_files(path: Path) -> None:
    """Remove the temporary files ``.NAME.tmpPID`` of `path` whose process PID is not running.

    Those of running processes stay: another writer may be filling one. A process id the
    system has since given to another process keeps its stale file until that process ends.
    Writers on several hosts sharing a folder are not told apart by process id; autospk
    writes each file from one process.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp(\d+)")
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and not _process_running(int(match.group(1))):
            candidate.unlink(missing_ok=True)


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a number too large to be one
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
