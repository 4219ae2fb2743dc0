"""The one place that touches Optuna's private names (``study._storage``, ``trial._trial_id``).

Optuna 5 has no public way to write a trial's system attrs: ``Trial`` only sets user attrs,
a sampler is handed a ``FrozenTrial``, and a worker cannot write to a trial that another
process runs. Our sampler must claim an architecture on its trial before the objective
starts, and a study may need to mark another worker's trial, so both go through this
module; an Optuna upgrade that renames these internals breaks here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of `trial` (unique within the storage, unlike its number)."""
    return trial._trial_id


def set_trial_system_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    """Write a system attr of `trial` (running or not) to the storage of `study`.

    Args:
        study: The study that holds the trial.
        trial: The trial, live or frozen.
        key: The attr's name.
        value: A JSON-serialisable value.
    """
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def fail_running_trial(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Mark another process's RUNNING trial FAIL, atomically.

    `optuna.Study.tell` would check the state and then write it, a gap in which a second
    worker recovering the same trial makes one of them crash; the storage's own update is
    conditional on the trial still running.

    Returns:
        False if someone else finished the trial first.
    """
    try:
        return study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def study_key(study: optuna.Study) -> tuple[Any, tuple[int, str]]:
    """The storage object of `study` and the study's id and name in it."""
    return study._storage, (study._study_id, study.study_name)
