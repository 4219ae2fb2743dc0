"""Crash recovery: who runs each trial, and failing the trials of workers that died.

A worker records itself on each trial (`WORKER_ATTR`) before its sampler proposes anything
(`OwnerRecordingSampler`). `fail_dead_trials` fails and re-enqueues the RUNNING trials whose
worker on this host has ended (read with psutil), and those without an owner of their own
once they are older than a grace period. Database heartbeats recover the trials of workers on
other hosts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import optuna
import psutil
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from .settings import StudySettings


WORKER_ATTR = "autospk:worker"
"""Trial system attr: the worker running the trial, ``{"host", "pid", "started", "trial", "device"}``.

``started`` is the process's start time (seconds since the epoch, from psutil), so that a new
process reusing the pid is not taken for the worker; ``trial`` is the number of
the trial the record was written for, so that a retry carrying a copy of its predecessor's
system attrs (Optuna's heartbeat retries copy them all) is not taken for a dead worker's.
"""


ORPHAN_HEARTBEATS = 3
"""A RUNNING trial without an owner of its own is orphaned after this many heartbeat intervals."""


def _started(process: psutil.Process) -> float:
    """A process's start time, rounded so that every reader of the same process agrees."""
    return round(process.create_time(), 2)


def this_worker() -> dict[str, Any]:
    """This process's owner record (without the trial number): host, pid and start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _started(psutil.Process(pid))}


def _alive(owner: Mapping[str, Any]) -> bool:
    """Whether the process an owner record names, on this host, still runs.

    A zombie has ended (its parent has not yet collected it), and a process with the pid
    but another start time is a new one that reuses the pid. A record without a start time,
    or with one in another unit (clock ticks since boot, as versions before psutil stored
    it), is judged by the pid alone.
    """
    try:
        process = psutil.Process(owner["pid"])
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        started = owner.get("started")
        return not isinstance(started, float) or started == _started(process)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def _owner(trial: FrozenTrial) -> Mapping[str, Any] | None:
    """The trial's owner record, if one was written for this trial."""
    owner = trial.system_attrs.get(WORKER_ATTR)
    if not isinstance(owner, Mapping) or not isinstance(owner.get("pid"), int) or owner["pid"] <= 0:
        return None
    # Records written before the trial number was recorded count as the trial's own.
    return owner if owner.get("trial", trial.number) == trial.number else None


def fail_dead_trials(study: optuna.Study, *, orphan_grace: float) -> list[int]:
    """Fail and re-enqueue (user attr ``retry_of``) the RUNNING trials whose worker died.

    A trial's worker died when its owner record names this host and a process that has
    ended, or when the trial has no owner record of its own and started more than
    `orphan_grace` seconds ago: its worker died between creating it and recording itself
    (a live worker records itself one storage read after the trial starts). Trials of
    workers on other hosts are left to database heartbeats. Start times are compared on
    this host's clock, so hosts sharing a storage need clocks closer than `orphan_grace`.

    Many processes may recover the same trials at once: only the one whose FAIL lands
    re-enqueues a trial, so each is retried once.

    Args:
        study: The study.
        orphan_grace: Seconds a RUNNING trial may go without an owner.

    Returns:
        The numbers of the trials failed here.
    """
    from nas._optuna_private import fail_running_trial
    from nas.study_index import StudyIndex

    host = socket.gethostname()
    # Every storage returns datetime_start as naive local time.
    orphaned_before = datetime.now() - timedelta(seconds=orphan_grace)
    failed = []
    index = StudyIndex.of(study)
    index.refresh(study)
    for t in [t for t in index.live if t.state == TrialState.RUNNING]:
        owner = _owner(t)
        if owner is None:
            dead = t.datetime_start is not None and t.datetime_start < orphaned_before
        else:
            dead = owner.get("host") == host and not _alive(owner)
        if dead and fail_running_trial(study, t):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            failed.append(t.number)
    return failed


def orphan_grace(settings: StudySettings) -> float:
    return ORPHAN_HEARTBEATS * settings.heartbeat_interval


class OwnerRecordingSampler(BaseSampler):
    """A study's sampler that first records, on each trial, the worker running it.

    `before_trial` is the first of our code that Optuna runs on a trial it has just created
    or taken from the queue, before the sampler proposes (which reads the whole study);
    so a trial goes without its owner for one storage read only.

    Args:
        sampler: The study's sampler; everything else is left to it.
        worker: This process's owner record (without the trial number).
    """

    def __init__(self, sampler: BaseSampler, worker: Mapping[str, Any]) -> None:
        self.sampler = sampler
        self.worker = dict(worker)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from nas._optuna_private import set_trial_system_attr

        set_trial_system_attr(study, trial, WORKER_ATTR, {**self.worker, "trial": trial.number})
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
