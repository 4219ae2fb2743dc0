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
on the neuron genes. A candidate's promise is the hypervolume it would add to the current
front of feasible trials (objectives scaled to the observed range); a candidate predicted to
be dominated scores minus its additive-epsilon distance to the front, so the least dominated
one wins when none is predicted to improve it. Both measures hold for any number of
objectives: the hypervolume is moocore's, and the epsilon distance takes the largest
per-objective step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import moocore
import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models import BLOCK_GENES, GLOBAL_GENES, SubnetConfig

from ..space import SearchSpace
from ._selection import violation

MIN_TRIALS = 8
"""Completed trials needed before the surrogate is fitted."""

RIDGE = 1.0
"""Ridge penalty on standardised features (the intercept is not penalised)."""


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

    Args:
        x: Features, one row per completed trial.
        y: Objective values, one row per completed trial.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.log = (y > 0).all(axis=0)
        target = np.where(self.log, np.log(np.where(y > 0, y, 1.0)), y)
        self.model = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE)).fit(x, target)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted objective values, one row per row of `x`."""
        # Ridge flattens the prediction of a single target; keep one column per objective.
        out = self.model.predict(x).reshape(len(x), -1)
        return np.where(self.log, np.exp(out), out)


def _minimised(values: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    return values * signs


def promise(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Score predicted points (minimised objectives) against observed ones: higher is better.

    Objectives are scaled to the observed range; a point scores the hypervolume it adds to
    the observed front (reference point 10% beyond the worst observed value of every
    objective), or minus its additive-epsilon distance to that front when it adds none:
    the smallest step that, taken in every objective at once, leaves no front point
    dominating it. With three objectives a gain is a volume of the scaled box, so it is
    smaller than a two-objective area for the same step; only the order of the scores
    matters.
    """
    low, high = observed.min(axis=0), observed.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    obs = (observed - low) / span
    pred = (predicted - low) / span
    if obs.shape[1] == 1:
        return obs.min() - pred[:, 0]
    front = obs[moocore.is_nondominated(obs)]
    ref = np.full(obs.shape[1], 1.1)
    base = moocore.hypervolume(front, ref=ref)
    scores = np.empty(len(pred))
    for i, p in enumerate(pred):
        gain = moocore.hypervolume(np.vstack([front, p]), ref=ref) - base if (p < ref).all() else 0.0
        if gain > 1e-12:
            scores[i] = gain
        else:
            # How far p must move (in every objective) before no front point dominates it.
            scores[i] = -max(0.0, float(np.max(np.min(p - front, axis=1))))
    return scores


def screen(
    candidates: Sequence[Mapping[str, Any]],
    trials: Sequence[FrozenTrial],
    directions: Sequence[StudyDirection],
    encoder: GenomeEncoder,
) -> list[int]:
    """Candidate indices, most promising first (draw order with too few completed trials)."""
    names = encoder.space.param_names()
    usable = [t for t in trials if t.values is not None and set(names) <= set(t.params)]
    if len(candidates) < 2 or len(usable) < MIN_TRIALS:
        return list(range(len(candidates)))
    x = np.array([encoder(t.params) for t in usable])
    y = np.array([t.values for t in usable], dtype=float)
    surrogate = Surrogate(x, y)
    predicted = surrogate.predict(np.array([encoder(c) for c in candidates]))
    feasible = np.array([violation(t) == 0 for t in usable])
    observed = y[feasible] if feasible.any() else y
    scores = promise(_minimised(predicted, directions), _minimised(observed, directions))
    return [int(i) for i in np.argsort(-scores, kind="stable")]
