"""Which architectures a study has already spent (or is spending) an evaluation on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from ..space import SearchSpace

ARCH_KEY = "autospk:arch_id"
"""Trial system attr: the arch id a sampler proposed, written before evaluation starts."""

ARCH_ATTR = "arch_id"
"""Trial user attr: the arch id an objective evaluated."""


def trial_arch_id(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(ARCH_ATTR) or trial.system_attrs.get(ARCH_KEY)


def known_arch_ids(
    study: optuna.Study, space: SearchSpace | None = None, *, exclude_trial_id: int | None = None
) -> set[str]:
    """Arch ids of every trial that is waiting, running or complete, read from storage.

    Read from the storage (not a cache) so that proposals of other workers count too.
    With `space`, enqueued trials count by their fixed params before they start.
    Failed trials do not count: their architectures may be tried again.
    """
    trials = study._storage.get_all_trials(
        study._study_id, deepcopy=False,
        states=(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED),
    )
    ids = set()
    for t in trials:
        if t._trial_id == exclude_trial_id:
            continue
        arch = trial_arch_id(t)
        fixed = t.system_attrs.get("fixed_params")
        if arch is None and space is not None and fixed and set(space.param_names()) <= set(fixed):
            arch = space.config_from_params(fixed).arch_id
        if arch is not None:
            ids.add(arch)
    return ids
