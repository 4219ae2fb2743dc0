"""The journal file backend of `studies.storage`: Optuna's, safe against a write cut short.

Kept apart from `studies.storage` because it subclasses an Optuna class, and the command
line must start without importing Optuna.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from typing import IO, Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from .errors import StorageError, StorageWarning


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend, safe against a write cut short.

    A write cut short by a full disk leaves a last line without its newline; Optuna's backend
    would append the next entry to that line, and no reader could parse the file again. This
    backend drops such a tail before it writes, under the journal's own lock (the lock file
    Optuna's backend uses by default), and refuses a file already glued together with an
    error naming the file, the line and the fix. A file that cannot be read or written (a full
    disk, no permission) raises `StorageError` with the system's reason.

    Args:
        file_path: The journal file; created if missing.
    """

    def __init__(self, file_path: str) -> None:
        try:
            super().__init__(file_path)
        except OSError as err:
            raise StorageError(f"cannot create journal {file_path}: {err}") from err

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError as err:  # json.JSONDecodeError, or Optuna's "Invalid log format."
            raise StorageError(_unreadable(self._file_path, err)) from err
        except OSError as err:
            raise StorageError(f"cannot read journal {self._file_path}: {err}") from err

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # Optuna's append_logs, with the tail checked under the same lock as the write.
        try:
            with get_lock_file(self._lock):
                self._drop_cut_tail()
                text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as err:
            raise StorageError(f"cannot write journal {self._file_path}: {err}") from err

    def _drop_cut_tail(self) -> None:
        with open(self._file_path, "rb+") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0:
                return
            f.seek(end - 1)
            if f.read(1) == b"\n":
                return
            keep = _after_last_newline(f, end)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        # Readers skip a line without its newline, so no process ever applied the dropped bytes.
        warnings.warn(f"journal {self._file_path}: dropped its last {end - keep} bytes, an entry whose write was "
                      "cut short (e.g. by a full disk); it was never complete, so no study had it",
                      StorageWarning, stacklevel=2)


def _after_last_newline(f: IO[bytes], end: int, chunk: int = 1 << 16) -> int:
    """The offset just after the last newline before `end` in the binary file `f` (0 if none)."""
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        found = f.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _unreadable(path: str, err: ValueError) -> str:
    """Why a journal cannot be read: its first line that is not one whole entry, and the fix."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except ValueError:
                return (f"journal {path}, line {number}: an entry cut short with the next entry appended to it (a "
                        "write met a full disk and a later one went on), so no study in the file can be read; keep "
                        "only the text from the last '{\"op_code\"' on that line (the complete entry) and run the "
                        "command again, or restore the file from a backup")
    return f"journal {path} cannot be read: {err}"
