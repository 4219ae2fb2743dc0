"""Which architectures a study has already spent (or is spending) an evaluation on.

The sampler writes the arch id it proposes to its trial (system attr `ARCH_KEY`, its claim;
the genome beside it, `PARAMS_KEY`) before the evaluation starts, and the objective records
the arch id it evaluated (user attr `ARCH_ATTR`). An architecture whose tries all killed
their worker is given up on: a FAIL trial with `GAVE_UP_ATTR` records it, and it counts as
known for good, so it is not proposed again. The sampler reads them back so that it proposes no architecture twice; the
objective, to reuse the result of a twin that slipped through (workers proposing at the
same moment). Everything is read from the storage, so other workers' trials count too.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ._optuna_private import trial_id

if TYPE_CHECKING:
    from .space import SearchSpace

ARCH_KEY = "autospk:arch_id"
"""Trial system attr: the arch id a sampler proposed, written before evaluation starts."""

PARAMS_KEY = "autospk:params"
"""Trial system attr: the whole genome the sampler proposed with its claim, so that a trial
whose worker died before it suggested every gene is retried as exactly that architecture."""

GAVE_UP_ATTR = "gave_up"
"""Trial user attr of a FAIL trial: why its architecture was given up on (every try killed its
worker). Set on a trial that records the decision (`studies.recovery`)."""

DIED_KEY = "autospk:died"
"""Trial system attr: how the trial's worker died, written just before the trial is failed for
it; a failed trial with it, a claim and no retry lost its retry (`StudyIndex.unretried`)."""

RETRY_OF_ATTR = "retry_of"
"""Trial user attr of a retry: the number of the trial whose worker died."""

ARCH_ATTR = "arch_id"
"""Trial user attr: the arch id an objective evaluated."""

DUPLICATE_ATTR = "duplicate_of"
"""Trial user attr: the number of the twin whose results a trial copied."""


def trial_arch_id(trial: FrozenTrial) -> str | None:
    """The arch id a trial evaluated or was proposed for (None if neither is recorded)."""
    return trial.user_attrs.get(ARCH_ATTR) or trial.system_attrs.get(ARCH_KEY)


class StudyIndex:
    """What this process knows of one study's trials, brought up to date by one read.

    Finished trials never change, so each is indexed once, the first time a read sees it
    finished; a read then only looks again at the trials that were still waiting or running.
    The per-trial cost of the sampler's and the objective's bookkeeping so stays flat as a
    study grows (the storage's own read of the trial list remains, as for any Optuna sampler).

    Get a study's index with `StudyIndex.of`: one per storage and study in a process.

    Attributes:
        completed: COMPLETE trials, in the order the index first saw them finished.
        live: WAITING and RUNNING trials at the last `refresh`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.completed: list[FrozenTrial] = []
        self.live: list[FrozenTrial] = []
        self._indexed: set[int] = set()
        self._below = 0  # every trial numbered below is finished and indexed
        self._finished_ids: set[str] = set()
        self._evaluated: dict[str, FrozenTrial] = {}
        self._died: dict[int, FrozenTrial] = {}
        self._retried: set[int] = set()
        self._first: tuple[int, Any] | None = None
        self._read_at = -math.inf

    @classmethod
    def of(cls, study: optuna.Study) -> StudyIndex:
        """The index of `study` kept by this process (one per storage object and study)."""
        from ._optuna_private import study_key

        storage, key = study_key(study)
        with _REGISTRY_LOCK:
            per_storage = _REGISTRY.setdefault(storage, {})
            return per_storage.setdefault(key, cls())

    def refresh(self, study: optuna.Study, *, max_age: float = 0.0) -> None:
        """Read the study's trials once and index those that finished since the last read.

        Args:
            study: The study this index is of.
            max_age: Skip the read if the last one is younger than this many seconds.
        """
        if max_age > 0 and time.monotonic() - self._read_at < max_age:
            return
        read_at = time.monotonic()
        trials = study.get_trials(deepcopy=False)
        with self._lock:
            self._read_at = read_at
            if self._replaced(trials):
                self._clear()
            # Trial numbers count from 0 without gaps, so a trial's number is its position.
            start = self._below if len(trials) > self._below and trials[self._below].number == self._below else 0
            live = []
            for t in trials[start:]:
                if t.number in self._indexed:
                    continue
                if t.state.is_finished():
                    self._index(t)
                else:
                    live.append(t)
            while self._below in self._indexed:
                self._below += 1
            self.live = live

    def mark_stale(self) -> None:
        """Make the next `refresh` read, whatever its `max_age` (a trial is finishing)."""
        self._read_at = -math.inf

    def _replaced(self, trials: list[FrozenTrial]) -> bool:
        """Whether the study was deleted and another created under its id and name.

        Some storages (SQLite) reuse the ids of deleted rows; a new study's first trial
        differs from the indexed one in its id or start time.
        """
        if self._first is None:
            return False
        first = trials[0] if trials else None
        return first is None or (trial_id(first), first.datetime_start) != self._first

    def _index(self, trial: FrozenTrial) -> None:
        if trial.number == 0:
            self._first = (trial_id(trial), trial.datetime_start)
        self._indexed.add(trial.number)
        if RETRY_OF_ATTR in trial.user_attrs:
            self._retried.add(trial.user_attrs[RETRY_OF_ATTR])
        if trial.state == TrialState.FAIL and DIED_KEY in trial.system_attrs and ARCH_KEY in trial.system_attrs:
            self._died[trial.number] = trial
        if trial.state == TrialState.FAIL and GAVE_UP_ATTR in trial.user_attrs:
            arch = trial_arch_id(trial)
            if arch is not None:
                self._finished_ids.add(arch)
            return
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return
        arch = trial_arch_id(trial)
        if arch is not None:
            self._finished_ids.add(arch)
        if trial.state == TrialState.COMPLETE:
            self.completed.append(trial)
            if arch is not None and ARCH_ATTR in trial.user_attrs and DUPLICATE_ATTR not in trial.user_attrs:
                first = self._evaluated.get(arch)
                if first is None or trial.number < first.number:
                    self._evaluated[arch] = trial

    def known(self, space: SearchSpace | None = None, *, exclude_number: int | None = None) -> set[str]:
        """Arch ids of the waiting, running, complete and pruned trials at the last `refresh`,
        and of the architectures given up on.

        Args:
            space: With it, enqueued trials count by their fixed params before they start.
            exclude_number: A waiting or running trial to leave out (the one being sampled).
        """
        with self._lock:
            ids = set(self._finished_ids)
            live = list(self.live)
        for t in live:
            if t.number != exclude_number:
                arch = _live_arch_id(t, space)
                if arch is not None:
                    ids.add(arch)
        return ids

    def unretried(self, older_than: float) -> list[FrozenTrial]:
        """Trials failed for a dead worker, with a claim, that no trial retries (nor records as
        given up): the process that failed one died before it enqueued the retry. Only those
        failed more than `older_than` seconds ago: the retry follows the failure at once."""
        import datetime

        before = datetime.datetime.now() - datetime.timedelta(seconds=older_than)
        with self._lock:
            retried = self._retried | {t.user_attrs.get(RETRY_OF_ATTR) for t in self.live}
            return [t for number, t in sorted(self._died.items()) if number not in retried
                    and t.datetime_complete is not None and t.datetime_complete < before]

    def evaluated(self, arch_id: str) -> FrozenTrial | None:
        """The lowest-numbered complete trial that evaluated `arch_id` itself (not a copy)."""
        with self._lock:
            return self._evaluated.get(arch_id)


_REGISTRY: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], StudyIndex]] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _live_arch_id(trial: FrozenTrial, space: SearchSpace | None) -> str | None:
    arch = trial_arch_id(trial)
    fixed = trial.system_attrs.get("fixed_params")
    if arch is None and space is not None and fixed and set(space.param_names()) <= set(fixed):
        arch = space.config_from_params(fixed).arch_id
    return arch


def known_arch_ids(
    study: optuna.Study, space: SearchSpace | None = None, *, exclude_number: int | None = None
) -> set[str]:
    """Arch ids of every trial that is waiting, running, complete or pruned, read from storage.

    Failed trials do not count: their architectures may be tried again.

    Args:
        study: The study.
        space: With it, enqueued trials count by their fixed params before they start.
        exclude_number: A trial to leave out (the one being sampled).

    Returns:
        The arch ids.
    """
    index = StudyIndex.of(study)
    index.refresh(study)
    return index.known(space, exclude_number=exclude_number)


def completed_twin(
    study: optuna.Study, trial_number: int, arch_id: str, *, timeout: float, poll: float = 0.5
) -> FrozenTrial | None:
    """The first complete, evaluated trial of `arch_id`, waiting while an earlier one runs.

    Only trials that evaluated the architecture themselves count (not copies of a twin).
    A running twin with a lower number is waited for, polling the storage; one with a
    higher number is not, since it may itself be waiting for this trial.

    Args:
        study: The study.
        trial_number: The trial looking for a twin (never its own twin).
        arch_id: The architecture.
        timeout: Seconds to wait for a running twin before giving up.
        poll: Seconds between reads of the storage.

    Returns:
        The twin with the lowest number, or None if there is none (in time).
    """
    index = StudyIndex.of(study)
    deadline = time.monotonic() + timeout
    while True:
        index.refresh(study)
        done = index.evaluated(arch_id)
        if done is not None and done.number != trial_number:
            return done
        running = [t for t in index.live if t.state == TrialState.RUNNING and t.number < trial_number
                   and trial_arch_id(t) == arch_id]
        if not running or time.monotonic() > deadline:
            return None
        time.sleep(poll)
