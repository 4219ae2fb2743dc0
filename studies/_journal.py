"""The journal file backend of `studies.storage`: Optuna's, safe against a write cut short and
against a writer killed while it holds the lock.

Kept apart from `studies.storage` because it subclasses Optuna classes, and the command
line must start without importing Optuna.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import IO, Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file

from .errors import StorageError, StorageWarning
from .processes import alive, this_process

try:
    import fcntl
except ImportError:  # Windows: breakers of a dead holder's lock are not serialised
    fcntl = None

LOCK_WAITS_ENV = "AUTOSPK_JOURNAL_LOCK_WAITS"
"""When set to a file, each wait for the journal's lock of a millisecond or more appends
``<seconds> <pid>`` to it (benchmarks/soak_workers.py reports the longest)."""


class HolderLock(JournalFileSymlinkLock):
    """The journal's lock, naming its holder, so that a dead holder's lock is broken at once.

    The lock is the file Optuna's default lock uses, ``<journal>.lock``: a symbolic link,
    created atomically. Optuna points it at the journal; ours points at a text naming the
    holder (host, pid, process start time and a token per acquisition). A writer that finds
    the lock taken reads the holder: one on this host whose process has ended (or whose pid a
    new process reuses) left it behind when it was killed, and the lock is broken at once.
    A holder on another host, or a lock of Optuna's own, is broken as Optuna does, once it has
    not changed for `grace_period` seconds. Breakers take a kernel lock (``flock``, released
    when its process dies) on ``<journal>.lock.break`` and break the lock only if it still
    names the holder they found, so no two of them can break a lock taken anew meanwhile.

    Args:
        journal: The journal file.
        grace_period: Seconds after which a lock of another host's or of Optuna's is broken.
    """

    def __init__(self, journal: str, grace_period: int = 30) -> None:
        super().__init__(journal, grace_period=grace_period)  # Optuna's lock file, <journal>.lock
        self._break_file = journal + ".lock.break"

    def acquire(self) -> bool:
        start = time.monotonic()
        holder = json.dumps({**this_process(), "token": uuid.uuid4().hex[:12]})
        sleep = 0.001
        seen, seen_at = None, start
        while True:
            try:
                os.symlink(holder, self._lock_file)
            except FileExistsError:
                pass
            else:
                _record_wait(time.monotonic() - start)
                return True
            current = _readlink(self._lock_file)
            if current is None:
                continue  # released meanwhile
            if current != seen:
                seen, seen_at = current, time.monotonic()
            owner = _holder(current)
            if owner is not None and owner.get("host") == socket.gethostname():
                stale = not alive(owner)
            else:
                stale = time.monotonic() - seen_at > self.grace_period
            if stale:
                self._break(current)
                sleep = 0.001
                continue
            time.sleep(sleep)
            sleep = min(2 * sleep, 0.05)

    def release(self) -> None:
        moved = f"{self._lock_file}.{uuid.uuid4().hex}.released"
        try:
            os.rename(self._lock_file, moved)
            os.unlink(moved)
        except OSError as err:
            raise RuntimeError(f"journal lock {self._lock_file} was not held: {err}") from err

    def _break(self, holder: str) -> None:
        """Remove the lock if it still names `holder` (a dead process, or one silent too long)."""
        with open(self._break_file, "a") as guard:
            if fcntl is not None:
                fcntl.flock(guard, fcntl.LOCK_EX)
            if _readlink(self._lock_file) != holder:
                return
            moved = f"{self._lock_file}.{uuid.uuid4().hex}.broken"
            with contextlib.suppress(FileNotFoundError):
                os.rename(self._lock_file, moved)
                os.unlink(moved)
        owner = _holder(holder)
        who = (f"pid {owner['pid']} on {owner['host']}, which has ended" if owner is not None
               and owner.get("host") == socket.gethostname() else f"a holder silent for {self.grace_period:g} s")
        warnings.warn(f"journal lock {self._lock_file}: broke the lock of {who}", StorageWarning, stacklevel=3)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:  # a regular file: a lock of another kind, judged by the grace period
        return "?"


def _holder(text: str) -> dict[str, Any] | None:
    """The holder a lock names, or None for a lock that is not ours (Optuna's names the journal)."""
    try:
        holder = json.loads(text)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _record_wait(seconds: float) -> None:
    path = os.environ.get(LOCK_WAITS_ENV)
    if path and seconds >= 1e-3:
        with contextlib.suppress(OSError), open(path, "a") as f:
            f.write(f"{seconds:.6f} {os.getpid()}\n")


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend, safe against a write cut short.

    A write cut short by a full disk leaves a last line without its newline; Optuna's backend
    would append the next entry to that line, and no reader could parse the file again. This
    backend drops such a tail before it writes, under the journal's own lock (`HolderLock`, on
    the lock file Optuna's backend uses by default), and refuses a file already glued together with an
    error naming the file, the line and the fix. A file that cannot be read or written (a full
    disk, no permission) raises `StorageError` with the system's reason.

    Args:
        file_path: The journal file; created if missing.
    """

    def __init__(self, file_path: str) -> None:
        try:
            super().__init__(file_path, lock_obj=HolderLock(file_path))
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
