"""The Optuna objective: a trial's genome -> inherited-weight accuracy and energy.

Three modes: ``aeb`` maximises F_AEB (one objective); ``pareto`` maximises accuracy and
minimises energy (two objectives); ``pareto3`` also minimises the subnet's parameters (three
objectives). All record the same user attrs on every trial.

With early rejection (`EvaluationSettings.early_rejection`), a subnet that cannot reach
the study's front (``pareto``, ``pareto3``) or beat its best F_AEB (``aeb``) is recorded as
PRUNED part-way through its evaluation (see `nas.rejection`). Optuna's pruning API
(``trial.report``, ``should_prune``) is for one objective only, so the objective raises
`optuna.TrialPruned` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from models import ConfigError, SubnetConfig, count_params

from .fitness import AEBSettings, f_aeb
from .rejection import RejectionRule, aeb_rule, pareto_rule
from .settings import METRIC_NAMES, OBJECTIVES, Budgets
from .space import SearchSpace
from .study_index import DUPLICATE_ATTR, StudyIndex, completed_twin

if TYPE_CHECKING:
    import pandas as pd

    from .evaluate import SubnetEvaluator


class SubnetObjective:
    """Evaluate the subnet a trial proposes, or reuse the result of its twin.

    A trial whose architecture another trial of the study already evaluated (possible
    when several workers propose at the same moment) is not evaluated again: it waits for
    the twin if it is still running, copies its results, and is marked with the user attr
    ``duplicate_of``.

    Every evaluated trial records ``eval_images_scored``; with `record_layers`, a trial
    scored in full also hands its per-layer energy table to it and records the user attrs
    it returns (where the table went). A trial rejected early records
    ``rejected`` (True), ``partial_accuracy``, ``partial_energy_mj``, ``accuracy_bound``
    and ``energy_bound_mj`` instead of ``accuracy`` and ``energy_mj``, and is PRUNED. The
    front (or best F_AEB) it is checked against is that of the study's complete, feasible
    trials when the trial starts.

    Args:
        space: The search space.
        evaluator: Scores subnets with inherited weights.
        objective: One of `OBJECTIVES`: ``aeb``, ``pareto`` or ``pareto3``.
        aeb: F_AEB settings (recorded in every mode).
        budgets: Optional parameter and energy limits.
        twin_timeout: Seconds to wait for a running twin before evaluating anyway.
        record_layers: Called with the trial and the per-layer energy table of each subnet
            scored in full (`nas.SubnetScore.layer_table`: every model priced per layer);
            returns user attrs to record (e.g. `studies.layer_artifacts.LayerRecorder`).
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: SubnetEvaluator,
        objective: str,
        aeb: AEBSettings,
        budgets: Budgets = Budgets(),
        twin_timeout: float = 600.0,
        record_layers: Callable[[optuna.Trial, pd.DataFrame], dict[str, Any]] | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective '{objective}'; choose from {list(OBJECTIVES)}")
        self.space = space
        self.evaluator = evaluator
        self.objective = objective
        self.aeb = aeb
        self.budgets = budgets
        self.twin_timeout = twin_timeout
        self.record_layers = record_layers

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
            score = self.evaluator(config, reject=self._rejection_rule(trial.study, config))
            attrs = score.attrs()
            if score.rejected:
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
                raise optuna.TrialPruned(
                    f"rejected after {score.images_scored} of {self.evaluator.images} images: accuracy at most "
                    f"{score.accuracy_bound:.4f}, energy at least {score.energy_bound_mj:.4g} mJ")
            attrs["f_aeb"] = f_aeb(score.accuracy, score.energy.energy_mj, self.aeb)
            if self.record_layers is not None:
                attrs.update(self.record_layers(trial, score.layer_table()))
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, value in self.budgets.constraints(attrs["params"], attrs["energy_mj"]).items():
            trial.set_constraint(key, value)
        return self.values(attrs)

    def _rejection_rule(self, study: optuna.Study, config: SubnetConfig) -> RejectionRule | None:
        """The early-rejection rule against the study's complete, feasible trials (None: no rejection).

        The trials come from the study's index, which the twin check has just brought up to date.
        """
        if not self.evaluator.settings.early_rejection:
            return None
        done = [t for t in StudyIndex.of(study).completed if all(c <= 0 for c in t.constraints.values())]
        if not done:
            return None
        if self.objective == "aeb":
            return aeb_rule(max(t.values[0] for t in done), self.aeb)
        if self.objective == "pareto":
            return pareto_rule([(t.values[0], t.values[1]) for t in done])
        # pareto3: the subnet's parameter count is known before it runs. A trial with fewer
        # parameters dominates it if it is at least as good in accuracy and energy; one with as
        # many must also be better in one of them.
        params = count_params(self.evaluator.net.supernet_cfg, config)
        fewer = [(t.values[0], t.values[1]) for t in done if t.values[2] < params]
        tied = pareto_rule([(t.values[0], t.values[1]) for t in done if t.values[2] == params])
        accuracy = np.array([a for a, _ in fewer])
        energy = np.array([e for _, e in fewer])

        def rule(accuracy_bound: float, energy_bound_mj: float) -> bool:
            weakly = bool(((accuracy >= accuracy_bound) & (energy <= energy_bound_mj)).any())
            return weakly or tied(accuracy_bound, energy_bound_mj)

        return rule
