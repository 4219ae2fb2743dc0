"""Which architectures a study has already spent (or is spending) an evaluation on.

The sampler writes the arch id it proposes to its trial (system attr `ARCH_KEY`) before
the evaluation starts, and the objective records the arch id it evaluated (user attr
`ARCH_ATTR`). The sampler reads them back so that it proposes no architecture twice; the
objective, to reuse the result of a twin that slipped through (workers proposing at the
same moment). Everything is read from the storage, so other workers' trials count too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from .space import SearchSpace

ARCH_KEY = "autospk:arch_id"
"""Trial system attr: the arch id a sampler proposed, written before evaluation starts."""

ARCH_ATTR = "arch_id"
"""Trial user attr: the arch id an objective evaluated."""

DUPLICATE_ATTR = "duplicate_of"
"""Trial user attr: the number of the twin whose results a trial copied."""


def trial_arch_id(trial: FrozenTrial) -> str | None:
    """The arch id a trial evaluated or was proposed for (None if neither is recorded)."""
    return trial.user_attrs.get(ARCH_ATTR) or trial.system_attrs.get(ARCH_KEY)


def known_arch_ids(
    study: optuna.Study, space: SearchSpace | None = None, *, exclude_number: int | None = None
) -> set[str]:
    """Arch ids of every trial that is waiting, running or complete, read from storage.

    Failed trials do not count: their architectures may be tried again.

    Args:
        study: The study.
        space: With it, enqueued trials count by their fixed params before they start.
        exclude_number: A trial to leave out (the one being sampled).

    Returns:
        The arch ids.
    """
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    )
    ids = set()
    for t in trials:
        if t.number == exclude_number:
            continue
        arch = trial_arch_id(t)
        fixed = t.system_attrs.get("fixed_params")
        if arch is None and space is not None and fixed and set(space.param_names()) <= set(fixed):
            arch = space.config_from_params(fixed).arch_id
        if arch is not None:
            ids.add(arch)
    return ids


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
    deadline = time.monotonic() + timeout
    while True:
        twins = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            if t.number != trial_number and trial_arch_id(t) == arch_id
            and (t.state == TrialState.COMPLETE or t.number < trial_number)
        ]
        done = [t for t in twins if t.state == TrialState.COMPLETE and ARCH_ATTR in t.user_attrs
                and DUPLICATE_ATTR not in t.user_attrs]
        if done:
            return min(done, key=lambda t: t.number)
        if not twins or time.monotonic() > deadline:
            return None
        time.sleep(poll)
