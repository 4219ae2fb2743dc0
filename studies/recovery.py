"""Crash recovery: who runs each trial, failing the trials of workers that died, and retrying
them as exactly the architecture they claimed.

A worker records itself on each trial (`WORKER_ATTR`) before its sampler proposes anything
(`OwnerRecordingSampler`). `fail_dead_trials` fails the RUNNING trials whose worker on this
host has ended (read with psutil), and those without an owner of their own once they are older
than a grace period; database heartbeats fail those of workers on other hosts
(`HeartbeatRetry`). A trial whose worker is one of `optimize`'s, while that `optimize` runs,
is left to it: it sees the worker's exit status and records the signal as the cause.

Every failed trial goes to `retry_dead_trial`: the retry is enqueued with the dead trial's
whole genome and its claim (`nas.study_index.ARCH_KEY`), so it evaluates and claims exactly
the architecture that died, and counts the tries (user attr ``attempt``). After
1 + ``max_retries`` tries the architecture is given up on: a FAIL trial records it with the
cause (`nas.study_index.GAVE_UP_ATTR`), and the sampler never proposes it again.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nas.study_index import RETRY_OF_ATTR

from .processes import alive, this_process

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from nas.space import SearchSpace

    from .settings import StudySettings


WORKER_ATTR = "autospk:worker"
"""Trial system attr: the worker running the trial, ``{"host", "pid", "started", "trial", "device"}``
and, for a worker of `optimize`, ``parent`` (that process's identity).

``started`` is the process's start time (seconds since the epoch, from psutil), so that a new
process reusing the pid is not taken for the worker; ``trial`` is the number of
the trial the record was written for, so that a retry carrying a copy of its predecessor's
system attrs (Optuna's heartbeat retries copy them all) is not taken for a dead worker's.
"""

RETRY_OF = RETRY_OF_ATTR
"""Trial user attr of a retry: the number of the trial whose worker died."""

ATTEMPT = "attempt"
"""Trial user attr: which try of its architecture a trial is (1 when absent)."""
RETRY_CAUSE = "retry_cause"
"""Trial user attr of a retry: how its predecessor's worker died."""
CARRIED = ("baseline", "enqueued")
"""User attrs a retry takes over from the trial it retries (what `create` enqueued it as)."""
INTERRUPTED = "interrupted (Ctrl-C)"
"""The cause of a trial stopped by Ctrl-C; such a try does not count against ``max_retries``."""

UNRETRIED_GRACE = 3.0
"""Seconds after which a trial failed for a dead worker without a retry gets one from any sweep."""

ORPHAN_HEARTBEATS = 3
"""A RUNNING trial without an owner of its own is orphaned after this many heartbeat intervals."""


def this_worker() -> dict[str, Any]:
    """This process's owner record (without the trial number): host, pid and start time."""
    return this_process()


def _owner(trial: FrozenTrial) -> Mapping[str, Any] | None:
    """The trial's owner record, if one was written for this trial."""
    owner = trial.system_attrs.get(WORKER_ATTR)
    if not isinstance(owner, Mapping) or not isinstance(owner.get("pid"), int) or owner["pid"] <= 0:
        return None
    # Records written before the trial number was recorded count as the trial's own.
    return owner if owner.get("trial", trial.number) == trial.number else None


def _genome(trial: FrozenTrial, space: SearchSpace) -> dict[str, Any] | None:
    """The whole genome a trial was to evaluate: its params once every gene is suggested, else
    what was enqueued or claimed for it; None if nothing was chosen yet."""
    from nas.study_index import PARAMS_KEY

    names = set(space.param_names())
    for params in (trial.params, trial.system_attrs.get("fixed_params"), trial.system_attrs.get(PARAMS_KEY)):
        if isinstance(params, Mapping) and names <= set(params):
            return {name: params[name] for name in space.param_names()}
    return None


def retry_dead_trial(study: optuna.Study, dead: FrozenTrial, cause: str, *, space: SearchSpace,
                     max_retries: int, counts: bool = True) -> bool:
    """Enqueue the architecture of a failed trial again, or give it up after 1 + `max_retries` tries.

    Call it once per failed trial, from the process whose FAIL landed. The retry is a WAITING
    trial with the dead trial's whole genome as its fixed params and its claim, so no other
    worker proposes that architecture meanwhile; it is evaluated before any new trial.

    Args:
        study: The study.
        dead: The failed trial (its worker died, or Ctrl-C stopped it).
        cause: How it died, e.g. ``killed by SIGKILL``; recorded on the retry, or as the reason
            the architecture was given up on.
        space: The study's search space.
        max_retries: Retries allowed after the first try.
        counts: Whether this death counts as a try (Ctrl-C does not).

    Returns:
        Whether a retry was enqueued: False if the trial had no architecture yet (nothing to
        retry) or its architecture was given up on.
    """
    from nas.study_index import ARCH_KEY, GAVE_UP_ATTR

    params = _genome(dead, space)
    if params is None:
        return False
    arch = space.config_from_params(params).arch_id
    tries = int(dead.user_attrs.get(ATTEMPT, 1))
    carried = {key: dead.user_attrs[key] for key in CARRIED if key in dead.user_attrs}
    if counts and tries >= 1 + max_retries:
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.FAIL, params=params, distributions=space.distributions(),
            user_attrs={**carried, RETRY_OF: dead.number, ATTEMPT: tries, GAVE_UP_ATTR: cause},
            system_attrs={ARCH_KEY: arch}))
        return False
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, system_attrs={"fixed_params": params, ARCH_KEY: arch},
        user_attrs={**carried, RETRY_OF: dead.number, ATTEMPT: tries + 1 if counts else tries, RETRY_CAUSE: cause}))
    return True


def _study_settings(study: optuna.Study) -> StudySettings:
    from .settings import SETTINGS_ATTR, StudySettings

    return StudySettings.from_dict(study.user_attrs[SETTINGS_ATTR])


def fail_dead_trials(study: optuna.Study, *, orphan_grace: float, settings: StudySettings | None = None,
                     causes: Mapping[int, str] | None = None, supervisor: bool = False) -> list[int]:
    """Fail the RUNNING trials whose worker died, and retry or give up each (`retry_dead_trial`).

    A trial's worker died when its owner record names this host and a process that has
    ended, or when the trial has no owner record of its own and started more than
    `orphan_grace` seconds ago: its worker died between creating it and recording itself
    (a live worker records itself one storage read after the trial starts). Trials of
    workers on other hosts are left to database heartbeats, and those of a running
    `optimize`'s workers to that `optimize` (`supervisor`). Start times are compared on this
    host's clock, so hosts sharing a storage need clocks closer than `orphan_grace`.

    Many processes may recover the same trials at once: only the one whose FAIL lands
    retries a trial, so each is retried once.

    Args:
        study: The study.
        orphan_grace: Seconds a RUNNING trial may go without an owner.
        settings: The study's settings (read from the study if not given).
        causes: How each dead worker ended, by pid, as its parent saw it.
        supervisor: Whether this process is the `optimize` whose workers these are.

    Returns:
        The numbers of the trials failed here.
    """
    from nas._optuna_private import fail_running_trial, set_trial_system_attr
    from nas.study_index import DIED_KEY, StudyIndex

    host = socket.gethostname()
    me = this_process()
    # Every storage returns datetime_start as naive local time.
    orphaned_before = datetime.now() - timedelta(seconds=orphan_grace)
    failed = []
    index = StudyIndex.of(study)
    index.refresh(study)
    for t in [t for t in index.live if t.state == TrialState.RUNNING]:
        owner = _owner(t)
        if owner is None:
            if t.datetime_start is None or t.datetime_start >= orphaned_before:
                continue
            cause = f"its worker died as the trial started (no owner for {orphan_grace:g} s)"
        else:
            if owner.get("host") != host or alive(owner):
                continue
            parent = owner.get("parent")
            if not supervisor and isinstance(parent, Mapping) and parent.get("pid") != me["pid"] and alive(parent):
                continue  # its optimize sees its exit status and fails it within a second
            generic = f"its worker (pid {owner['pid']} on {host}) ended during the trial"
            cause = (causes or {}).get(owner["pid"], generic)
        # Marked first: a process killed between the failure and the retry leaves a trial that
        # any later sweep retries (`StudyIndex.unretried`).
        try:
            set_trial_system_attr(study, t, DIED_KEY, cause)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another sweep failed it first
        if fail_running_trial(study, t):
            settings = settings or _study_settings(study)
            retry_dead_trial(study, t, cause, space=settings.space, max_retries=settings.max_retries,
                             counts=cause != INTERRUPTED)
            failed.append(t.number)
    for t in index.unretried(older_than=UNRETRIED_GRACE):
        settings = settings or _study_settings(study)
        retry_dead_trial(study, t, t.system_attrs[DIED_KEY], space=settings.space, max_retries=settings.max_retries,
                         counts=t.system_attrs[DIED_KEY] != INTERRUPTED)
        index.mark_stale()
    return failed


def requeue_interrupted(study: optuna.Study, settings: StudySettings, number: int | None) -> list[int]:
    """After Ctrl-C in a worker: enqueue again, first, the architectures of its stopped trials.

    Optuna failed the trial the objective was running (`number`); one that Ctrl-C stopped
    while the sampler proposed is still RUNNING and is failed here. Neither counts as a try.

    Returns:
        The numbers of the trials retried.
    """
    from nas._optuna_private import fail_running_trial

    me = this_process()
    retried = []
    for t in study.get_trials(deepcopy=False):
        owner = _owner(t)
        if owner is None or any(owner.get(key) != me[key] for key in ("host", "pid", "started")):
            continue
        stopped = (t.state == TrialState.RUNNING and fail_running_trial(study, t)) or (
            t.state == TrialState.FAIL and t.number == number)
        if stopped and retry_dead_trial(study, t, INTERRUPTED, space=settings.space,
                                        max_retries=settings.max_retries, counts=False):
            retried.append(t.number)
    return retried


class HeartbeatRetry:
    """Optuna's failed-trial callback of a database storage's heartbeat: `retry_dead_trial`.

    Optuna fails a trial whose heartbeats stopped (its worker on another host died) and calls
    this; the retry is ours, not Optuna's copy of the trial (which would keep the params it had
    and let the sampler claim another architecture), and the study's ``max_retries`` holds.
    """

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        settings = _study_settings(study)
        owner = _owner(trial) or {}
        where = f" on {owner['host']}" if "host" in owner else ""
        retry_dead_trial(study, trial, f"no heartbeat for {self.grace_period:g} s (its worker{where} stopped)",
                         space=settings.space, max_retries=settings.max_retries)


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
