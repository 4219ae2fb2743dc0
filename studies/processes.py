"""Which process is which: a process's identity (host, pid, start time) and whether the process
an identity names still runs. Trial owner records and the journal's lock name their holder so."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import psutil


def started(process: psutil.Process) -> float:
    """A process's start time, rounded so that every reader of the same process agrees."""
    return round(process.create_time(), 2)


def this_process() -> dict[str, Any]:
    """This process's identity: host, pid and start time (a new process reusing the pid differs)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": started(psutil.Process(pid))}


def alive(identity: Mapping[str, Any]) -> bool:
    """Whether the process an identity names, on this host, still runs.

    A zombie has ended (its parent has not yet collected it), and a process with the pid
    but another start time is a new one that reuses the pid. An identity without a start time,
    or with one in another unit (clock ticks since boot, as versions before psutil stored
    it), is judged by the pid alone.
    """
    try:
        process = psutil.Process(identity["pid"])
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        when = identity.get("started")
        return not isinstance(when, float) or when == started(process)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True
