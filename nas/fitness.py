"""F_AEB: the accuracy and energy balanced fitness.

The paper gives no formula; we use the weighted-product form of MnasNet and AutoSNN::

    F_AEB = Acc * (E / E_ref) ** w,   w = alpha if E <= E_ref else beta

The exponent w is an exchange rate: F_AEB stays the same when the accuracy changes by a
factor (1 + a) and the energy by (1 + a) ** (-1 / w) (`energy_for_accuracy`). With
alpha = beta = -0.07 (the default), 1% more accuracy (relative) is worth 15.3% more energy,
1% less accuracy is made up by 13.4% less energy, and halving the energy is worth 5.0%
relative accuracy. alpha, beta and E_ref are settings of a study and are stored with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from models import ConfigError


@dataclass(frozen=True)
class AEBSettings:
    """Settings of F_AEB.

    Args:
        e_ref: Reference energy in mJ. None until known: `studies.create` then measures the
            energy of the space's largest subnet and stores that.
        alpha: F_AEB's exponent when the energy is at most `e_ref`.
        beta: F_AEB's exponent when the energy is above `e_ref`.
    """

    e_ref: float | None = None
    alpha: float = -0.07
    beta: float = -0.07

    def __post_init__(self) -> None:
        if self.e_ref is not None and not 0 < self.e_ref < math.inf:
            raise ConfigError(f"F_AEB reference energy e_ref={self.e_ref} must be a finite number > 0 (mJ)")
        if self.alpha > 0 or self.beta > 0:
            raise ConfigError(
                f"F_AEB exponents alpha={self.alpha}, beta={self.beta} must be <= 0 "
                "(more energy must never raise the fitness)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def f_aeb(accuracy: float, energy_mj: float, settings: AEBSettings) -> float:
    """The F_AEB fitness of a subnet (higher is better).

    Args:
        accuracy: Accuracy in [0, 1].
        energy_mj: Energy per image in mJ (> 0).
        settings: Reference energy and exponents.
    """
    if settings.e_ref is None:
        raise ConfigError("F_AEB needs a reference energy: e_ref is not set")
    if energy_mj <= 0:
        raise ValueError(f"energy_mj={energy_mj} must be > 0")
    w = settings.alpha if energy_mj <= settings.e_ref else settings.beta
    return accuracy * (energy_mj / settings.e_ref) ** w


def energy_for_accuracy(w: float, accuracy_change: float) -> float:
    """The relative energy change that F_AEB trades for a relative accuracy change.

    F_AEB = Acc x (E / E_ref) ** w is the same for (Acc, E) and
    (Acc x (1 + a), E x (1 + x)) when (1 + a) x (1 + x) ** w = 1, that is
    x = (1 + a) ** (-1 / w) - 1.

    Args:
        w: The exponent (alpha or beta), < 0.
        accuracy_change: a, e.g. 0.01 for 1% more accuracy (relative), -0.01 for 1% less.

    Returns:
        x, e.g. 0.1527 for w = -0.07 and a = 0.01 (15.3% more energy), -0.1337 for a = -0.01.

    Raises:
        ValueError: for w >= 0 (F_AEB then ignores energy, or rewards it) or a <= -1.
    """
    if w >= 0:
        raise ValueError(f"w={w}: F_AEB trades accuracy for energy only with a negative exponent")
    if accuracy_change <= -1:
        raise ValueError(f"accuracy_change={accuracy_change} must be > -1 (a relative change)")
    return (1.0 + accuracy_change) ** (-1.0 / w) - 1.0
