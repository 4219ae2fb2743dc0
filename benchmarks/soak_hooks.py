"""Hooks benchmarks/soak_workers.py installs in every worker process (through a sitecustomize.py
it writes; nothing here runs in a user's search).

``AUTOSPK_SOAK`` holds ``MARKS,TRIES,POISON,HOLD``:

- a storage write marks itself with the file ``MARKS/<pid>`` while it runs, and lasts HOLD
  seconds longer (the journal: from taking its lock to releasing it; a database: from the
  transaction's last statement to its commit), so the soak can kill a worker inside one;
- every evaluation appends ``<arch_id> <pid>`` to TRIES;
- an evaluation of the architecture POISON kills its own process with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

ENV = "AUTOSPK_SOAK"


def install() -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    marks, tries, poison, hold = spec.split(",")
    hold_s = float(hold)
    mark = os.path.join(marks, str(os.getpid()))

    def enter() -> None:
        open(mark, "w").close()
        time.sleep(hold_s)

    def leave() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mark)

    from optuna.storages._rdb import storage as rdb

    real_session = rdb._create_scoped_session

    @contextlib.contextmanager
    def marked_session(scoped_session, ignore_integrity_error=False):
        try:
            with real_session(scoped_session, ignore_integrity_error) as session:
                yield session
                if session.new or session.dirty or session.deleted:
                    enter()  # inside the transaction, before its commit
        finally:
            leave()

    rdb._create_scoped_session = marked_session

    from studies._journal import HolderLock

    real_acquire, real_release = HolderLock.acquire, HolderLock.release

    def acquire(self) -> bool:
        held = real_acquire(self)
        enter()
        return held

    def release(self) -> None:
        leave()
        real_release(self)

    HolderLock.acquire, HolderLock.release = acquire, release

    from nas.space import SearchSpace

    real_suggest = SearchSpace.suggest

    def suggest(self, trial):
        config = real_suggest(self, trial)
        with open(tries, "a") as f:
            f.write(f"{config.arch_id} {os.getpid()}\n")
        if config.arch_id == poison:
            os.kill(os.getpid(), signal.SIGKILL)
        return config

    SearchSpace.suggest = suggest
