"""Survivor selection: constrained non-dominated sorting, crowding distance, top-k."""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial


def violation(trial: FrozenTrial) -> float:
    """Total constraint violation (0 for a feasible trial); constraints <= 0 are met."""
    return sum(max(0.0, c) for c in trial.constraints.values())


def _constrained_rank(values: np.ndarray, violations: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
    """Non-dominated rank of each point under Deb's constrained domination (0 is best).

    Feasible points come first, ranked by Pareto dominance of their values; infeasible ones
    follow, ranked by total violation (equal violations share a rank).

    Args:
        values: Objective values, one row per point.
        violations: Total constraint violation of each point (0 when feasible).
        directions: Direction of each objective.

    Returns:
        An integer rank per point.
    """
    feasible = violations == 0
    rank = np.zeros(len(values), dtype=int)
    offset = 0
    if feasible.any():
        maximise = [d == StudyDirection.MAXIMIZE for d in directions]
        rank[feasible] = moocore.pareto_rank(values[feasible], maximise=maximise)
        offset = rank[feasible].max() + 1
    rank[~feasible] = offset + np.unique(violations[~feasible], return_inverse=True)[1]
    return rank


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each point of one front (boundaries are infinite).

    Args:
        values: Objective values of the front, one row per point. Points with equal values
            keep their row order when sorted, so the first of equal minima and the last of
            equal maxima are the boundaries.

    Returns:
        The crowding distance of each point.
    """
    n = len(values)
    if n <= 2:
        return np.full(n, np.inf)
    order = np.argsort(values, axis=0, kind="stable")
    ordered = np.take_along_axis(values, order, axis=0)
    span = ordered[-1] - ordered[0]
    gaps = np.divide(ordered[2:] - ordered[:-2], span, out=np.zeros((n - 2, values.shape[1])), where=span > 0)
    per_objective = np.zeros_like(values, dtype=float)
    np.put_along_axis(per_objective, order[1:-1], gaps, axis=0)
    distance = per_objective.sum(axis=1)
    distance[order[0]] = distance[order[-1]] = np.inf
    return distance


def select_top(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection], k: int) -> list[FrozenTrial]:
    """The `k` best trials: by F_AEB (one objective) or by NSGA-II rank and crowding.

    Feasible trials always come before infeasible ones. Ties keep trial-number order, so
    the selection is deterministic.

    Args:
        trials: Completed trials to choose from.
        directions: Direction of each objective.
        k: How many trials to keep.

    Returns:
        The selected trials, best rank first; the last, partly taken front by crowding
        distance, largest first.
    """
    trials = sorted(trials, key=lambda t: t.number)
    if len(directions) == 1:
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return sorted(trials, key=lambda t: (violation(t), sign * t.values[0]))[:k]
    values = np.array([t.values for t in trials], dtype=float).reshape(len(trials), len(directions))
    violations = np.array([violation(t) for t in trials], dtype=float)
    rank = _constrained_rank(values, violations, directions)
    selected: list[int] = []
    for r in np.unique(rank):
        front = np.flatnonzero(rank == r)
        if len(selected) + len(front) <= k:
            selected.extend(front)
            continue
        crowding = crowding_distance(values[front])
        selected.extend(front[np.argsort(-crowding, kind="stable")[: k - len(selected)]])
        break
    return [trials[i] for i in selected]
