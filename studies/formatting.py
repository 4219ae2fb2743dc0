"""Study results for people: energy units, the F_AEB exchange rate in words, architectures in
one line, and display tables of fronts (the numbers stay in `studies.analysis`'s frames).

Accuracy shows in percent, and energy in the unit `energy_unit` picks for a table's values
(mJ, µJ, nJ or pJ), named in its header.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models import BLOCK_GENES, GLOBAL_GENES
from nas.fitness import AEBSettings, energy_for_accuracy

from .analysis import BASELINE_COLUMNS

ENERGY_UNITS = (("mJ", 1.0), ("µJ", 1e3), ("nJ", 1e6), ("pJ", 1e9))
"""Display units of energy and their factors from mJ."""


def energy_unit(values_mj: Sequence[float] | pd.Series | np.ndarray) -> tuple[str, float]:
    """The display unit of energies: the largest unit in which the highest value reads >= 1.

    A table or figure picks one unit for all its energies and names it in its header, e.g.
    digits subnets of 0.0000012 to 0.00014 mJ read 1.2 to 140 nJ.

    Args:
        values_mj: Energies in mJ (NaN and values <= 0 are ignored).

    Returns:
        ``(unit, factor)``: the unit's name and the factor from mJ, e.g. ``("nJ", 1e6)``;
        ``("mJ", 1.0)`` when no value is positive.
    """
    values = np.asarray(values_mj, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return ENERGY_UNITS[0]
    highest = float(values.max())
    for unit, factor in ENERGY_UNITS:
        if highest * factor >= 1:
            return unit, factor
    return ENERGY_UNITS[-1]


def format_energy(value_mj: float, unit: tuple[str, float] | None = None) -> str:
    """An energy for people, e.g. ``136.4 nJ`` (unit: `energy_unit` of the value, or given)."""
    name, factor = unit or energy_unit([value_mj])
    return f"{factor * value_mj:.4g} {name}"


def exchange_rate_text(aeb: AEBSettings) -> str:
    """What F_AEB's exponents mean, in one paragraph, and how to aim it at a target energy.

    For alpha = beta = -0.07: "1% more accuracy (relative) is worth 15.3% more energy; 1%
    less accuracy is made up by 13.4% less energy; ...".
    """
    def rate(w: float) -> str:
        if w == 0:
            return "energy is not weighed at all"
        more, less = energy_for_accuracy(w, 0.01), energy_for_accuracy(w, -0.01)
        return (f"1% more accuracy (relative) is worth {100 * more:.1f}% more energy, and 1% less accuracy is "
                f"made up by {-100 * less:.1f}% less energy")

    if aeb.alpha == aeb.beta:
        rates = f"At w = {aeb.alpha:g}, {rate(aeb.alpha)}"
        if aeb.alpha < 0:
            rates += (f"; a tenth of the energy is worth as much as {100 * (0.1 ** aeb.alpha - 1):.1f}% more "
                      "accuracy")
        rates += "."
    else:
        rates = (f"Below E_ref (w = alpha = {aeb.alpha:g}) {rate(aeb.alpha)}; above it (w = beta = {aeb.beta:g}) "
                 f"{rate(aeb.beta)}.")
    return (f"F_AEB = Acc x (E / E_ref)^w trades accuracy for energy at a fixed exchange rate. {rates} "
            "To aim at a target energy E_t, create the study with --e-ref E_t: a subnet at E_t scores its "
            "plain accuracy. --alpha sets the reward for going under E_t (0: none) and --beta the price of "
            "going over it (-1: accuracy divided by the overshoot factor); MnasNet's hard target is "
            "alpha = 0, beta = -1, its soft one alpha = beta = -0.07. For a strict limit use --max-energy-mj.")


ENERGY_MODEL_TITLES = {"ops": "45 nm operation prices", "lemaire": "Lemaire et al. 2022: compute and SRAM accesses",
                       "loihi": "Intel Loihi's published costs", "spinnaker2": "SpiNNaker 2's published costs"}
"""A few words on each energy model, as printed next to its figures (`energy.ENERGY_MODELS` says more)."""


def energy_model_text(model: str, profile: str = "fp32") -> str:
    """An energy model named for a header: ``ops (45 nm operation prices, fp32 profile)``."""
    detail = ENERGY_MODEL_TITLES.get(model, model)
    return f"{model} ({detail}, {profile} profile)" if model == "ops" else f"{model} ({detail})"


def block_values(row: pd.Series, gene: str) -> list[float | int]:
    """A per-block gene of one row of `trials_frame`, for its active blocks only."""
    if gene not in BLOCK_GENES:
        raise ValueError(f"{gene!r} is not a per-block gene; choose from {list(BLOCK_GENES)}")
    return [row[f"{gene}_{block}"] for block in range(int(row["depth"]))]


def _fmt(value: float | int) -> str:
    return f"{value:g}"


def architecture_text(row: pd.Series, separator: str = ", ") -> str:
    """The active genes of a row in one line, e.g. ``depth 2, embed_dim 64, time_steps 2,
    num_heads 2/4, mlp_ratio 4/3, tau 2/2, threshold 1/0.8``."""
    parts = [f"{gene} {_fmt(row[gene])}" for gene in GLOBAL_GENES]
    parts += [f"{gene} {'/'.join(_fmt(v) for v in block_values(row, gene))}" for gene in BLOCK_GENES]
    return separator.join(parts)


BASELINE_MARK = "baseline"
"""What `front_table` writes in its ``note`` column on the baseline's row."""
KNEE_MARK = "knee"
"""The knee of the front: what ``export --trial knee`` picks."""
BEST_MARK = "best"
"""The feasible trial with the highest F_AEB: what ``export --trial best`` picks."""


def front_table(front: pd.DataFrame, *, unit: tuple[str, float] | None = None,
                baseline_columns: bool = False) -> pd.DataFrame:
    """A display table of a front (or any trials frame): accuracy in %, energy in one unit
    named in its header, per-block genes as ``a / b`` strings of the active blocks.

    Args:
        front: Rows of a `trials_frame`.
        unit: ``(name, factor from mJ)``; default `energy_unit` of the rows' energies.
        baseline_columns: Add ``acc - baseline pp`` (percentage points), ``E / E_baseline``
            and ``E / E_ANN``, from the `BASELINE_COLUMNS` of `front` (apply
            `compare_to_baseline` to the whole trials frame, where the baseline is, first).

    Returns:
        Columns ``trial``, ``note`` (`BASELINE_MARK`, `KNEE_MARK` and `BEST_MARK`, joined by
        ``+``, on the rows flagged ``baseline``, ``knee`` and ``best_f_aeb``; else empty),
        ``accuracy %``, ``energy <unit>``, [the baseline columns], ``F_AEB``, ``params``,
        ``SOPs`` and the genes.

    Raises:
        ValueError: for `baseline_columns` on rows without the `BASELINE_COLUMNS`.
    """
    name, factor = unit or energy_unit(front["energy_mj"])

    def flags(column: str) -> pd.Series:
        return front[column].astype(bool) if column in front else pd.Series(False, index=front.index)

    marks = [(flags("baseline"), BASELINE_MARK), (flags("knee"), KNEE_MARK), (flags("best_f_aeb"), BEST_MARK)]
    notes = ["+".join(mark for flag, mark in marks if flag[i]) for i in front.index]
    table = pd.DataFrame({
        "trial": front["number"].astype(int),
        "note": notes,
        "accuracy %": 100 * front["accuracy"],
        f"energy {name}": factor * front["energy_mj"],
    })
    if baseline_columns:
        missing = [c for c in BASELINE_COLUMNS if c not in front]
        if missing:
            raise ValueError(f"rows lack {missing}: apply compare_to_baseline to the whole trials frame first")
        table["acc - baseline pp"] = 100 * front["accuracy_vs_baseline"]
        table["E / E_baseline"] = front["energy_vs_baseline"]
        table["E / E_ANN"] = front["energy_vs_ann"]
    table["F_AEB"] = front["f_aeb"]
    table["params"] = front["params"].astype("Int64")
    table["SOPs"] = front["sops"]
    for gene in GLOBAL_GENES:
        table[gene] = front[gene].astype(int)
    for gene in BLOCK_GENES:
        table[gene] = [" / ".join(_fmt(v) for v in block_values(row, gene)) for _, row in front.iterrows()]
    return table


def display_formats(table: pd.DataFrame) -> dict[str, Callable[[Any], str]]:
    """How each number column of a `front_table` prints (a dash for a missing value)."""
    formats: dict[str, Callable[[Any], str]] = {
        "accuracy %": "{:.2f}".format, "F_AEB": "{:.4f}".format, "params": "{:,}".format,
        "SOPs": "{:.3g}".format, "acc - baseline pp": "{:+.2f}".format, "E / E_baseline": "{:.3g}".format,
        "E / E_ANN": "{:.3g}".format}
    formats.update({c: "{:.4g}".format for c in table.columns if c.startswith("energy ")})

    def skip_missing(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
        return lambda value: "-" if pd.isna(value) else fmt(value)

    return {column: skip_missing(fmt) for column, fmt in formats.items() if column in table}
