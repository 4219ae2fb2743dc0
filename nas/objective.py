"""The Optuna objective: a trial's genome -> inherited-weight accuracy and energy.

Three modes: ``aeb`` maximises F_AEB (one objective); ``pareto`` maximises accuracy and
minimises energy (two objectives); ``pareto3`` also minimises the subnet's parameters (three
objectives). All record the same user attrs on every trial.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from models import ConfigError

from .dedup import DUPLICATE_ATTR, completed_twin
from .fitness import AEBSettings, f_aeb
from .settings import METRIC_NAMES, OBJECTIVES, Budgets
from .space import SearchSpace

if TYPE_CHECKING:
    from .evaluate import SubnetEvaluator


class SubnetObjective:
    """Evaluate the subnet a trial proposes, or reuse the result of its twin.

    A trial whose architecture another trial of the study already evaluated (possible
    when several workers propose at the same moment) is not evaluated again: it waits for
    the twin if it is still running, copies its results, and is marked with the user attr
    ``duplicate_of``.

    Args:
        space: The search space.
        evaluator: Scores subnets with inherited weights.
        objective: One of `OBJECTIVES`: ``aeb``, ``pareto`` or ``pareto3``.
        aeb: F_AEB settings (recorded in every mode).
        budgets: Optional parameter and energy limits.
        twin_timeout: Seconds to wait for a running twin before evaluating anyway.
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: SubnetEvaluator,
        objective: str,
        aeb: AEBSettings,
        budgets: Budgets = Budgets(),
        twin_timeout: float = 600.0,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective '{objective}'; choose from {list(OBJECTIVES)}")
        self.space = space
        self.evaluator = evaluator
        self.objective = objective
        self.aeb = aeb
        self.budgets = budgets
        self.twin_timeout = twin_timeout

    def values(self, attrs: dict[str, Any]) -> float | tuple[float, ...]:
        """The objective values of a trial's user attrs, in the order of `METRIC_NAMES`."""
        names = METRIC_NAMES[self.objective]
        if len(names) == 1:
            return float(attrs[names[0]])
        return tuple(float(attrs[name]) for name in names)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        config = self.space.suggest(trial)
        twin = completed_twin(trial.study, trial.number, config.arch_id, timeout=self.twin_timeout)
        if twin is not None:
            attrs = {k: v for k, v in twin.user_attrs.items() if k != DUPLICATE_ATTR}
            attrs[DUPLICATE_ATTR] = twin.number
        else:
            score = self.evaluator(config)
            attrs = score.attrs()
            attrs["f_aeb"] = f_aeb(score.accuracy, score.energy.energy_mj, self.aeb)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, value in self.budgets.constraints(attrs["params"], attrs["energy_mj"]).items():
            trial.set_constraint(key, value)
        return self.values(attrs)
