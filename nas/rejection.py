"""Early rejection: bounds on a subnet's full-split scores from a partial evaluation.

After scoring ``n`` of the ``N`` images a subnet is scored on, with ``k`` correct and a
measured energy per image ``E_n``, two bounds hold whatever the other images are:

- accuracy: the full-split accuracy is at most ``(k + N - n) / N`` (every image left is
  classified correctly);
- energy: a subnet's energy per image is the mean over images of a per-image energy whose
  MAC part (the first conv, the head: dense layers on real values) is the same for every
  image and whose AC part (spike-driven layers) is never negative. So the full-split energy
  is at least ``(n * E_n + (N - n) * E_MAC) / N``, with ``E_MAC`` the per-image MAC energy.

A subnet whose bounds are already dominated by a complete trial (``pareto``), or whose
F_AEB at those bounds is below the best so far (``aeb``), is not on the final front, nor
the best, whatever its remaining images hold: rejecting it loses nothing, by construction.
A complete trial's values are final, so the front of complete trials read when a trial
starts stays valid while it runs (the study's front only improves).

Optionally (`EvaluationSettings.rejection_confidence`), the accuracy bound is the exact
one-sided upper confidence bound of the hypergeometric distribution at that level: valid
when the ``n`` images scored are a uniformly random draw from the ``N``, which the
evaluator's fixed shuffled order provides. It rejects sooner, and holds with the stated
probability only: the level is split evenly over the checks (Bonferroni), so a subnet the
full evaluation would keep is rejected with probability at most ``1 - level``. The energy
bound stays the certain one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .fitness import AEBSettings, f_aeb

ENERGY_SLACK = 1e-4
"""Relative slack taken off the energy bound: spike counts are summed in float32, so the
partial and the full energy carry independent round-off (about 1e-7 per batch summed)."""

RejectionRule = Callable[[float, float], bool]
"""``rule(accuracy_bound, energy_bound_mj)``: True when a subnet whose full-split accuracy is
at most the first and whose energy is at least the second cannot matter to the study."""


def accuracy_upper_bound(correct: int, scored: int, total: int, *, confidence: float | None = None,
                         checks: int = 1) -> float:
    """An upper bound on the accuracy over all `total` images, from `correct` of `scored`.

    Args:
        correct: Images classified correctly so far.
        scored: Images scored so far (the first `scored` of a fixed order).
        total: Images the full evaluation scores.
        confidence: None: the bound that holds with certainty, ``(correct + total - scored)
            / total``. A level in (0, 1): the largest accuracy ``K / total`` that a one-sided
            exact hypergeometric test at level ``1 - (1 - confidence) / checks`` does not
            reject, never above the certain bound.
        checks: How many times the bound is checked during one evaluation (the level is
            split over them).

    Returns:
        The bound, in [0, 1].
    """
    if not 0 <= correct <= scored <= total or total < 1:
        raise ValueError(f"need 0 <= correct ({correct}) <= scored ({scored}) <= total ({total}), total >= 1")
    most = correct + total - scored
    if confidence is None or scored == 0:
        return most / total
    from scipy.stats import hypergeom  # scikit-learn's dependency; only this bound needs it

    alpha = (1.0 - confidence) / max(1, checks)

    def plausible(right: int) -> bool:
        # P(at most `correct` right among `scored` drawn | `right` right of `total`) > alpha.
        return bool(hypergeom.cdf(correct, total, right, scored) > alpha)

    low, high = correct, most  # plausible(correct) always holds: the probability is 1
    if plausible(high):
        return high / total
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if plausible(middle) else (low, middle)
    return low / total


def energy_lower_bound(partial_mj: float, mac_mj: float, scored: int, total: int) -> float:
    """A lower bound on the energy per image over all `total` images.

    Args:
        partial_mj: Energy per image measured on the `scored` images.
        mac_mj: The part of it spent in MAC layers: the same for every image.
        scored: Images scored so far.
        total: Images the full evaluation scores.

    Returns:
        ``(scored * partial_mj + (total - scored) * mac_mj) / total``, less `ENERGY_SLACK`.
    """
    return (scored * partial_mj + (total - scored) * mac_mj) / total * (1.0 - ENERGY_SLACK)


def pareto_rule(front: Sequence[tuple[float, float]]) -> RejectionRule:
    """Reject a subnet that a point of `front` dominates (maximise accuracy, minimise energy).

    Args:
        front: ``(accuracy, energy_mj)`` of complete, feasible trials (any of them, not
            only the non-dominated ones).
    """
    points = np.asarray(front, dtype=float).reshape(-1, 2)
    accuracy, energy = points[:, 0], points[:, 1]

    def rule(accuracy_bound: float, energy_bound_mj: float) -> bool:
        at_least = (accuracy >= accuracy_bound) & (energy <= energy_bound_mj)
        better = (accuracy > accuracy_bound) | (energy < energy_bound_mj)
        return bool((at_least & better).any())

    return rule


def aeb_rule(best: float, settings: AEBSettings) -> RejectionRule:
    """Reject a subnet whose F_AEB at the bounds is below `best`.

    F_AEB rises with accuracy and never rises with energy (both exponents are <= 0, and it
    is continuous at E_ref), so its value at the bounds bounds the full evaluation's.

    Args:
        best: The highest F_AEB of the study's complete, feasible trials.
        settings: The study's F_AEB settings.
    """

    def rule(accuracy_bound: float, energy_bound_mj: float) -> bool:
        return f_aeb(accuracy_bound, energy_bound_mj, settings) < best

    return rule
