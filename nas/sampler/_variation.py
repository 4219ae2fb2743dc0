"""Children from parents: uniform crossover and per-gene mutation over the genome."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ..space import GLOBAL_GENES, SearchSpace


def uniform_crossover(
    a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random, *, swap_prob: float
) -> dict[str, Any]:
    """A child taking each gene from `a` or, with probability `swap_prob`, from `b`."""
    return {name: b[name] if rng.random() < swap_prob else a[name] for name in a}


def mutate(
    params: Mapping[str, Any],
    space: SearchSpace,
    rng: random.Random,
    *,
    global_prob: float,
    block_prob: float,
    neighbour: bool = False,
) -> dict[str, Any]:
    """Mutate each gene with its probability.

    A mutated gene is redrawn uniformly from its other choices, or, with `neighbour`,
    moved one step up or down its ordered choices. Per-block genes of every block up to
    the maximum depth exist in the genome, so a depth change never needs resizing.
    """
    child = dict(params)
    for name, value in params.items():
        prob = global_prob if name in GLOBAL_GENES else block_prob
        if rng.random() >= prob:
            continue
        choices = space.choices(name)
        if len(choices) == 1:
            continue
        if neighbour:
            i = choices.index(value)
            steps = [j for j in (i - 1, i + 1) if 0 <= j < len(choices)]
            child[name] = choices[rng.choice(steps)]
        else:
            child[name] = rng.choice([c for c in choices if c != value])
    return child
