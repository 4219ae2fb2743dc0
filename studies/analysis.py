"""Results of a study as tables: trials, Pareto front, F_AEB best, knee, hypervolume.

The table functions are pure (a `pandas.DataFrame` in, a frame or a row out) so that the
CLI, the HTML report and the notebook agree, and tests can check them on hand-made frames.
`trials_frame` builds the frame from a study's complete trials; its gene columns come from
the study's search space. Loading studies and supernets lives in `studies.study`.

Accuracy is kept as a fraction in [0, 1] in every frame; only figures and display tables
show it in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import moocore
import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial

from models import BLOCK_GENES, GLOBAL_GENES
from nas.space import SearchSpace

METRICS = ("accuracy", "energy_mj", "f_aeb", "params", "sops", "macs", "firing_rate")
"""Per-trial results (user attrs) that become columns of `trials_frame`."""

def frame_columns(space: SearchSpace) -> list[str]:
    """Columns of `trials_frame` for a study on `space`, in order."""
    return ["number", *METRICS, *space.param_names(), "arch_id", "feasible", "duplicate_of"]


def trials_frame(trials: Sequence[FrozenTrial], space: SearchSpace) -> pd.DataFrame:
    """One row per complete trial, ordered by trial number.

    Columns (see `frame_columns`): ``number``; the metrics of `METRICS` (``accuracy`` as a
    fraction in [0, 1], ``energy_mj`` in mJ per image); every gene of the genome
    (``depth``, ``embed_dim``, ``time_steps``, then ``num_heads_0``, ``mlp_ratio_0``, ...),
    where genes of blocks at or beyond ``depth`` are dormant and NaN; ``arch_id``;
    ``feasible`` (every Optuna constraint <= 0, True without budgets); ``duplicate_of``
    (the trial whose results a duplicate copied, else missing).

    Args:
        trials: COMPLETE trials of a study.
        space: Its search space.

    Returns:
        The frame; empty, with the same columns, when there are no trials.
    """
    columns = frame_columns(space)
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        row: dict[str, Any] = {"number": trial.number}
        row.update({name: attrs.get(name, math.nan) for name in METRICS})
        depth = int(trial.params["depth"])
        for name in space.param_names():
            block = int(name.rsplit("_", 1)[1]) if name not in GLOBAL_GENES else -1
            row[name] = trial.params[name] if block < depth else math.nan
        row["arch_id"] = attrs.get("arch_id")
        row["feasible"] = all(value <= 0 for value in trial.constraints.values())
        row["duplicate_of"] = attrs.get("duplicate_of")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    frame["duplicate_of"] = frame["duplicate_of"].astype("Int64")
    frame["feasible"] = frame["feasible"].astype(bool)
    return frame.sort_values("number", ignore_index=True)


def _feasible(frame: pd.DataFrame) -> pd.DataFrame:
    """Feasible rows with both objectives known; a frame without ``feasible`` is all feasible."""
    rows = frame[frame["feasible"].astype(bool)] if "feasible" in frame else frame
    return rows.dropna(subset=["accuracy", "energy_mj"])


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated feasible rows: maximum accuracy, minimum energy.

    Rows with the same (accuracy, energy) as an earlier trial, such as duplicates that
    copied their twin's results, are dropped (the lowest trial number stays).

    Args:
        frame: Rows with ``accuracy`` and ``energy_mj`` (and optionally ``number`` and
            ``feasible``), e.g. from `trials_frame`.

    Returns:
        The front, sorted by energy (lowest first), with a fresh index.
    """
    rows = _feasible(frame)
    if "number" in rows:
        rows = rows.sort_values("number")
    if rows.empty:
        return rows.reset_index(drop=True)
    points = rows[["accuracy", "energy_mj"]].to_numpy(dtype=float)
    keep = moocore.is_nondominated(points, maximise=[True, False], keep_weakly=False)
    return rows[keep].sort_values(["energy_mj", "accuracy"], ascending=[True, False], ignore_index=True)


def best_aeb(frame: pd.DataFrame) -> pd.Series:
    """The feasible row with the highest F_AEB (the lowest trial number on a tie).

    Raises:
        ValueError: if no row is feasible.
    """
    rows = _feasible(frame).dropna(subset=["f_aeb"])
    if rows.empty:
        raise ValueError("no feasible complete trial with an F_AEB value; run more trials or relax the budgets")
    if "number" in rows:
        rows = rows.sort_values("number")
    return rows.iloc[int(np.argmax(rows["f_aeb"].to_numpy(dtype=float)))]


def _unit(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def knee(front: pd.DataFrame) -> pd.Series:
    """The knee of a Pareto front: the point that bulges furthest towards the ideal.

    Both axes are scaled to [0, 1] over the front, so its extremes become (0, 0) (least
    energy, least accuracy) and (1, 1); the knee is the point furthest from the line
    joining them on the ideal side (more accuracy for its energy). A signed distance is
    used because a point on the far side of that line is a poor trade-off, not a knee.
    Ties, such as a front of one or two points, go to the more accurate point.

    Args:
        front: A Pareto front, e.g. from `pareto_front`.

    Raises:
        ValueError: if the front is empty.
    """
    if front.empty:
        raise ValueError("the Pareto front is empty: no feasible complete trial")
    accuracy = front["accuracy"].to_numpy(dtype=float)
    energy = front["energy_mj"].to_numpy(dtype=float)
    # Proportional to the signed distance from the diagonal (0, 0)-(1, 1).
    gain = _unit(accuracy) - _unit(energy)
    order = np.lexsort((-accuracy, -gain))
    return front.iloc[order[0]]


def default_ref_point(frame: pd.DataFrame) -> tuple[float, float]:
    """The default hypervolume reference point: (1.0, 1.1 x the highest energy in `frame`)."""
    energy = frame["energy_mj"].max()
    return 1.0, 1.1 * float(energy) if pd.notna(energy) else 1.0


def hypervolume_history(frame: pd.DataFrame, ref_point: Sequence[float] | None = None) -> pd.DataFrame:
    """Hypervolume of the feasible front after each complete trial.

    Points are (1 - accuracy, energy_mj), both minimised; the hypervolume is the area they
    dominate up to `ref_point` (units: error fraction x mJ), computed by `moocore`.

    Args:
        frame: Rows with ``number``, ``accuracy``, ``energy_mj`` (and optionally ``feasible``).
        ref_point: (error, energy_mj) reference. Default: (1.0, 1.1 x the highest energy
            of any row of `frame`), so every trial better than chance on both counts adds
            area and the curve of one study is comparable over time.

    Returns:
        Columns ``n_trials`` (complete trials so far), ``number`` (the trial just
        completed) and ``hypervolume`` (non-decreasing). ``attrs["ref_point"]`` holds the
        reference point used.
    """
    rows = frame.sort_values("number", ignore_index=True)
    ref = tuple(float(v) for v in ref_point) if ref_point is not None else default_ref_point(rows)
    if len(ref) != 2:
        raise ValueError(f"ref_point={ref_point} must be two numbers: (error, energy_mj)")
    feasible = rows.index.isin(_feasible(rows).index)
    points = np.column_stack([1.0 - rows["accuracy"].to_numpy(dtype=float), rows["energy_mj"].to_numpy(dtype=float)])
    volumes = []
    for n in range(1, len(rows) + 1):
        seen = points[:n][feasible[:n]]
        volumes.append(float(moocore.hypervolume(seen, ref=ref)) if len(seen) else 0.0)
    history = pd.DataFrame({"n_trials": np.arange(1, len(rows) + 1), "number": rows["number"].to_numpy(),
                            "hypervolume": volumes})
    history.attrs["ref_point"] = ref
    return history


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


def front_table(front: pd.DataFrame) -> pd.DataFrame:
    """A display table of a front (or any trials frame): accuracy in %, per-block genes as
    ``a / b`` strings of the active blocks."""
    table = pd.DataFrame({
        "trial": front["number"].astype(int),
        "accuracy %": 100 * front["accuracy"],
        "energy mJ": front["energy_mj"],
        "F_AEB": front["f_aeb"],
        "params": front["params"].astype("Int64"),
        "SOPs": front["sops"],
    })
    for gene in GLOBAL_GENES:
        table[gene] = front[gene].astype(int)
    for gene in BLOCK_GENES:
        table[gene] = [" / ".join(_fmt(v) for v in block_values(row, gene)) for _, row in front.iterrows()]
    return table


def shown_trials(frame: pd.DataFrame, objective: str, top: int) -> pd.DataFrame:
    """What ``autospk-study show`` lists: the Pareto front (``pareto``), or the `top` feasible
    trials by F_AEB (``aeb``)."""
    if objective == "pareto":
        return pareto_front(frame)
    return _feasible(frame).sort_values("f_aeb", ascending=False).head(top)
