"""Hooks for fault-injection tests, and a worker that runs with them.

    python -m tests.fault_worker STORAGE STUDY N_TRIALS LOG [--pause S] [--poison ARCH_ID] [--host NAME]

`install` wraps the search space's `suggest` in this process: each parameter is suggested
after a pause of S seconds (so a worker killed at a random moment is usually killed with part
of its trial's parameters written), and once all are, ``start <trial> <arch_id> <pid>`` is
appended to LOG and the evaluation waits S seconds more (a test counts the tries of an
architecture from the log, whichever process made them). An evaluation of the architecture
POISON then kills its own process with SIGKILL, as a crash in a kernel or the OOM killer
would. ``--host`` makes the worker name another host in its owner records, as a worker on
another machine sharing the database would.

Processes that `optimize` spawns take the hooks from ``AUTOSPK_FAULT_HOOKS``
(``LOG,S,POISON``) through `sitecustomize_dir`, a folder to put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from pathlib import Path

HOOKS_ENV = "AUTOSPK_FAULT_HOOKS"


def install(log: str, pause: float = 0.0, poison: str | None = None, host: str | None = None) -> None:
    """Install the hooks in this process (once)."""
    from optuna.trial import Trial

    from nas.space import SearchSpace

    if getattr(SearchSpace.suggest, "fault_hooks", False):
        return
    real_suggest = SearchSpace.suggest
    real_param = Trial._suggest

    def slow_param(self, name, distribution):
        time.sleep(pause)
        return real_param(self, name, distribution)

    def suggest(self, trial):
        Trial._suggest = slow_param
        try:
            config = real_suggest(self, trial)
        finally:
            Trial._suggest = real_param
        with open(log, "a") as f:
            f.write(f"start {trial.number} {config.arch_id} {os.getpid()}\n")
        time.sleep(pause)
        if poison is not None and config.arch_id == poison:
            os.kill(os.getpid(), signal.SIGKILL)
        return config

    suggest.fault_hooks = True
    SearchSpace.suggest = suggest
    if host is not None:
        socket.gethostname = lambda: host


def install_from_env() -> None:
    spec = os.environ.get(HOOKS_ENV)
    if spec:
        log, pause, poison = (spec.split(",") + ["", ""])[:3]
        install(log, float(pause or 0.0), poison or None)


def sitecustomize_dir(folder: Path) -> Path:
    """A folder whose sitecustomize.py installs the hooks of ``AUTOSPK_FAULT_HOOKS`` in every
    Python process started with it on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text("import tests.fault_worker\ntests.fault_worker.install_from_env()\n")
    return folder


def tries(log: str | Path) -> list[tuple[int, str, int]]:
    """(trial, arch_id, pid) of every evaluation started, in order."""
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [(int(trial), arch, int(pid)) for _, trial, arch, pid in (line.split() for line in f)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("study")
    parser.add_argument("n_trials", type=int)
    parser.add_argument("log")
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--poison", default=None)
    parser.add_argument("--host", default=None)
    args = parser.parse_args()
    install(args.log, args.pause, args.poison, args.host)
    from studies.optuna_log import quiet_optuna
    from studies.workers import run_worker

    quiet_optuna()
    run_worker(args.storage, args.study, n_trials=args.n_trials, device="cpu")


if __name__ == "__main__":
    main()
