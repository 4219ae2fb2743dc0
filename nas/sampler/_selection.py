"""Survivor selection: constrained non-dominated sorting, crowding distance, top-k."""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial


def violation(trial: FrozenTrial) -> float:
    """Total constraint violation (0 for a feasible trial); constraints <= 0 are met."""
    return sum(max(0.0, c) for c in trial.constraints.values())


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[StudyDirection]) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == StudyDirection.MINIMIZE:
            x, y = -x, -y
        if x < y:
            return False
        better = better or x > y
    return better


def constrained_dominates(a: FrozenTrial, b: FrozenTrial, directions: Sequence[StudyDirection]) -> bool:
    """Deb's constrained domination: feasible beats infeasible, less violation beats more."""
    va, vb = violation(a), violation(b)
    if va > 0 or vb > 0:
        return va < vb
    return dominates(a.values, b.values, directions)


def nondominated_fronts(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[list[FrozenTrial]]:
    """Split `trials` into fronts under constrained domination (best front first)."""
    n = len(trials)
    dominated_by = [0] * n
    dominating: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if constrained_dominates(trials[i], trials[j], directions):
                dominating[i].append(j)
                dominated_by[j] += 1
            elif constrained_dominates(trials[j], trials[i], directions):
                dominating[j].append(i)
                dominated_by[i] += 1
    fronts = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append([trials[i] for i in current])
        following = []
        for i in current:
            for j in dominating[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current = following
    return fronts


def crowding_distance(front: Sequence[FrozenTrial]) -> list[float]:
    """NSGA-II crowding distance of each trial in one front (boundaries are infinite)."""
    n = len(front)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for k in range(len(front[0].values)):
        order = sorted(range(n), key=lambda i: front[i].values[k])
        low, high = front[order[0]].values[k], front[order[-1]].values[k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for pos in range(1, n - 1):
            gap = front[order[pos + 1]].values[k] - front[order[pos - 1]].values[k]
            distance[order[pos]] += gap / (high - low)
    return distance


def select_top(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection], k: int) -> list[FrozenTrial]:
    """The `k` best trials: by F_AEB (one objective) or by NSGA-II rank and crowding.

    Feasible trials always come before infeasible ones. Ties keep trial-number order, so
    the selection is deterministic.
    """
    trials = sorted(trials, key=lambda t: t.number)
    if len(directions) == 1:
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return sorted(trials, key=lambda t: (violation(t), sign * t.values[0]))[:k]
    selected: list[FrozenTrial] = []
    for front in nondominated_fronts(trials, directions):
        if len(selected) + len(front) <= k:
            selected.extend(front)
            continue
        distance = crowding_distance(front)
        order = sorted(range(len(front)), key=lambda i: -distance[i])
        selected.extend(front[i] for i in order[: k - len(selected)])
        break
    return selected
