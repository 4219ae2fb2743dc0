"""Offspring screening: an additive surrogate of the objectives, fitted on the study so far.

Evaluating a subnet costs a BN recalibration and a pass over the validation set; the
analytic cost of a subnet (its dense-MAC energy) costs nothing. The sampler can therefore
draw several children, predict their objective values and evaluate only the child that
promises the most (surrogate-assisted pre-selection).

The surrogate is a ridge regression of each objective (scikit-learn, on standardised
features) on the genome one-hot encoded (the per-block genes averaged over active blocks,
so dormant genes do not count) plus the log of the analytic cost. Strictly positive
objectives (accuracy, energy, parameters, F_AEB) are regressed in log space, where energy
is close to linear: log E = log(dense cost) + log(firing rate), and the firing rate depends
on the neuron genes. The ridge penalty of each objective is chosen by leave-one-out error
(scikit-learn's `RidgeCV`), and that error is the surrogate's uncertainty.

A candidate's promise is the hypervolume it is expected to add to the current front of
feasible trials (objectives scaled to the observed range): the mean gain over a grid of
outcomes, each objective's prediction shifted by equal-probability quantiles of a normal
error with the leave-one-out spread (independent per objective). A point predicted just
behind the front but with a wide error may still extend it, so screening keeps exploring
where the surrogate is unsure instead of always taking the safest-looking child. When no
candidate is expected to add anything, each scores minus the additive-epsilon distance of
its predicted point to the front, so the least dominated one wins. Both measures hold for
any number of objectives: the hypervolume is moocore's, and the epsilon distance takes the
largest per-objective step.
The fit uses the most recent trials and the front (`Observed`), not the whole history, so
screening costs the same in a long study.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from statistics import NormalDist
from typing import Any

import moocore
import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models import BLOCK_GENES, GLOBAL_GENES, SubnetConfig

from ..space import SearchSpace
from ._selection import violation

MIN_TRIALS = 8
"""Completed trials needed before the surrogate is fitted."""

RECENT = 400
"""Most recent completed trials the surrogate is fitted on (besides the front): a bounded
sample keeps each proposal's cost flat in the size of the study."""

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)
"""Ridge penalties on standardised features, one chosen per objective by leave-one-out
error (the intercept is not penalised)."""

def _normal_quantiles(k: int) -> np.ndarray:
    """The midpoints of `k` equal-probability bins of the standard normal."""
    return np.array([NormalDist().inv_cdf((i + 0.5) / k) for i in range(k)])


OUTCOMES = {2: 5, 3: 3}
"""Quantiles per objective in the grid of outcomes a candidate is scored over (5 x 5 for two
objectives, 3 x 3 x 3 for three; one objective uses 5)."""


class GenomeEncoder:
    """Fixed-length numeric features of a genome: one-hot genes and the log of its cost."""

    def __init__(self, space: SearchSpace, cost: Callable[[SubnetConfig], float]) -> None:
        self.space = space
        self.cost = cost
        self._features: dict[tuple[Any, ...], np.ndarray] = {}
        self.names = space.param_names()

    def __call__(self, params: Mapping[str, Any]) -> np.ndarray:
        key = tuple(params[n] for n in self.names)
        if key not in self._features:
            self._features[key] = self._encode(params)
        return self._features[key]

    def _encode(self, params: Mapping[str, Any]) -> np.ndarray:
        config = self.space.config_from_params(params)
        features: list[float] = []
        for gene in GLOBAL_GENES:
            features += [float(params[gene] == c) for c in self.space.genes[gene]]
        for gene in BLOCK_GENES:
            active = [params[f"{gene}_{b}"] for b in range(config.depth)]
            features += [sum(v == c for v in active) / len(active) for c in self.space.genes[gene]]
        features.append(float(np.log(max(self.cost(config), 1e-30))))
        return np.asarray(features)


class Surrogate:
    """Ridge regression of each objective on genome features, in log space where positive.

    Attributes:
        log: Per objective, whether it is regressed in log space.
        spread: Per objective, the root-mean-square leave-one-out error of the regression
            (in log space where `log`).

    Args:
        x: Features, one row per completed trial.
        y: Objective values, one row per completed trial.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.log = (y > 0).all(axis=0)
        target = np.where(self.log, np.log(np.where(y > 0, y, 1.0)), y)
        ridge = RidgeCV(alphas=list(RIDGE_ALPHAS), alpha_per_target=True, store_cv_results=True)
        self.model = make_pipeline(StandardScaler(), ridge).fit(x, target)
        # Squared leave-one-out errors per trial, objective and penalty; keep the chosen penalty's.
        errors = ridge.cv_results_.reshape(len(x), target.shape[1], len(RIDGE_ALPHAS))
        chosen = [RIDGE_ALPHAS.index(a) for a in np.atleast_1d(ridge.alpha_)]
        self.spread = np.sqrt([errors[:, j, k].mean() for j, k in enumerate(chosen)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted objective values, one row per row of `x`."""
        return self._values(self._fit(x))

    def outcomes(self, x: np.ndarray) -> np.ndarray:
        """Equally likely objective values per row of `x`: shape (rows, outcomes, objectives).

        The grid of `OUTCOMES` quantiles of each objective's error; the middle outcome (all
        errors zero) is the prediction.
        """
        fit = self._fit(x)
        k = OUTCOMES.get(fit.shape[1], 5)
        shifts = np.array(list(product(_normal_quantiles(k), repeat=fit.shape[1]))) * self.spread
        return self._values(fit[:, None, :] + shifts[None, :, :])

    def _fit(self, x: np.ndarray) -> np.ndarray:
        # Ridge flattens the prediction of a single target; keep one column per objective.
        return self.model.predict(x).reshape(len(x), -1)

    def _values(self, fit: np.ndarray) -> np.ndarray:
        return np.where(self.log, np.exp(fit), fit)


def promise(predicted: np.ndarray, front: np.ndarray, low: np.ndarray, high: np.ndarray,
            outcomes: np.ndarray | None = None) -> np.ndarray:
    """Score predicted points (minimised objectives) against the observed front: higher is better.

    Objectives are scaled to the observed range [`low`, `high`]; a point scores the
    hypervolume it adds to the observed front (reference point 10% beyond the worst
    observed value of every objective), averaged over its `outcomes` when given (the
    expected gain), or, when that is nil, minus the additive-epsilon distance of its
    predicted point to the front: the smallest step that, taken in every objective at
    once, leaves no front point dominating it. With one objective the gain is the
    improvement on the best value. With three objectives a gain is a volume of the scaled
    box, so it is smaller than a two-objective area for the same step; only the order of
    the scores matters.

    Args:
        predicted: Points to score, one row each.
        front: The observed non-dominated points.
        low: Best observed value of each objective.
        high: Worst observed value of each objective.
        outcomes: Equally likely outcomes of each point, shape (points, outcomes,
            objectives); None: the predicted point only.
    """
    span = np.where(high > low, high - low, 1.0)
    front = (front - low) / span
    pred = (predicted - low) / span
    draws = pred[:, None, :] if outcomes is None else (outcomes - low) / span
    if front.shape[1] == 1:
        best = front.min()
        gains = np.maximum(best - draws[:, :, 0], 0.0).mean(axis=1)
        return np.where(gains > 1e-12, gains, np.minimum(best - pred[:, 0], 0.0))
    ref = np.full(front.shape[1], 1.1)
    if front.shape[1] == 2:
        gains = _gains_2d(draws.reshape(-1, 2), front, ref).reshape(draws.shape[:2]).mean(axis=1)
    else:
        base = moocore.hypervolume(front, ref=ref)
        gains = np.array([np.mean([moocore.hypervolume(np.vstack([front, d]), ref=ref) - base
                                   if (d < ref).all() else 0.0 for d in point_draws]) for point_draws in draws])
    scores = np.empty(len(pred))
    for i, p in enumerate(pred):
        gain = float(gains[i])
        if gain > 1e-12:
            scores[i] = gain
        else:
            # How far p must move (in every objective) before no front point dominates it.
            scores[i] = -max(0.0, float(np.max(np.min(p - front, axis=1))))
    return scores


def _gains_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The area each point would add to a 2-D front (both minimised), up to `ref`, all at once.

    Sorted by the first objective, the front is a staircase: between its i-th and (i+1)-th
    point, everything above height y_i is dominated (above the reference before the first).
    A point (a, b) adds, over each step from a to the reference, the height between b and the
    step. Costs (points x front) numpy operations instead of a hypervolume per point.
    """
    front = front[np.argsort(front[:, 0], kind="stable")]
    heights = np.minimum.accumulate(np.concatenate([[ref[1]], front[:, 1]]))  # per step, from -inf
    edges = np.concatenate([[-np.inf], front[:, 0], [ref[0]]])
    starts = np.clip(edges[None, :-1], points[:, :1], ref[0])
    ends = np.clip(edges[None, 1:], points[:, :1], ref[0])
    return ((ends - starts) * np.maximum(heights[None, :] - points[:, 1:], 0.0)).sum(axis=1)


class Observed:
    """What screening needs of a study's completed trials, updated one trial at a time.

    The surrogate is fitted on the `RECENT` most recent trials plus the current front, so
    a fit costs the same at 200 trials as at 10,000; the front and the observed range are
    kept over every trial, and each trial is encoded once. Feasible trials (no violated
    constraint) define the front and range; while there are none, all trials do.

    Args:
        directions: Direction of each objective.
        encoder: Features of a genome.
    """

    def __init__(self, directions: Sequence[StudyDirection], encoder: GenomeEncoder) -> None:
        self.signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
        self.encoder = encoder
        self.recent: deque[_Row] = deque(maxlen=RECENT)
        self.count = 0
        # Per feasibility (True: feasible trials, False: all trials): the front and the range.
        self._front: dict[bool, list[_Row]] = {True: [], False: []}
        self._low: dict[bool, np.ndarray] = {}
        self._high: dict[bool, np.ndarray] = {}

    def add(self, trial: FrozenTrial) -> None:
        """Take in one completed trial (ignored without values or with genes missing)."""
        if trial.values is None or not set(self.encoder.names) <= set(trial.params):
            return
        point = np.asarray(trial.values, dtype=float) * self.signs
        row = _Row(trial.number, self.encoder(trial.params), np.asarray(trial.values, dtype=float), point)
        self.count += 1
        self.recent.append(row)
        for feasible in (False, True) if violation(trial) == 0 else (False,):
            self._low[feasible] = np.minimum(self._low.get(feasible, point), point)
            self._high[feasible] = np.maximum(self._high.get(feasible, point), point)
            front = self._front[feasible]
            if any((r.point <= point).all() for r in front):
                continue
            front[:] = [r for r in front if not (point <= r.point).all()]
            front.append(row)

    def training(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and objective values to fit the surrogate on: the recent trials and the front."""
        recent = {r.number for r in self.recent}
        rows = list(self.recent) + [r for r in self._front[self._feasible()] if r.number not in recent]
        return np.array([r.features for r in rows]), np.array([r.values for r in rows])

    def front(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The front's points (minimised objectives) and the observed best and worst values."""
        feasible = self._feasible()
        return np.array([r.point for r in self._front[feasible]]), self._low[feasible], self._high[feasible]

    def _feasible(self) -> bool:
        return bool(self._front[True])


@dataclass(frozen=True)
class _Row:
    number: int
    features: np.ndarray
    values: np.ndarray
    point: np.ndarray  # values with every objective minimised


def screen(candidates: Sequence[Mapping[str, Any]], observed: Observed) -> list[int]:
    """Candidate indices, most promising first (draw order with too few completed trials)."""
    if len(candidates) < 2 or observed.count < MIN_TRIALS:
        return list(range(len(candidates)))
    x, y = observed.training()
    surrogate = Surrogate(x, y)
    features = np.array([observed.encoder(c) for c in candidates])
    front, low, high = observed.front()
    scores = promise(surrogate.predict(features) * observed.signs, front, low, high,
                     surrogate.outcomes(features) * observed.signs)
    return [int(i) for i in np.argsort(-scores, kind="stable")]
