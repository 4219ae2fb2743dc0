"""Results of a study as tables: trials, Pareto front, F_AEB best, knee, hypervolume.

The table functions are pure (a `pandas.DataFrame` in, a frame or a row out) so that the
CLI, the HTML report and the notebook agree, and tests can check them on hand-made frames.
`trials_frame` builds the frame from a study's complete trials; its gene columns come from
the study's search space. Loading studies and supernets lives in `studies.study`.

The front functions take the kind of study (`nas.settings.OBJECTIVES`): a ``pareto3``
study's front is the 3-D one of (accuracy, energy_mj, params); a ``pareto`` or ``aeb``
study's is the 2-D one of (accuracy, energy_mj) (an aeb study optimises one number, and its
trade-off is read in that plane).

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
from nas.settings import DIRECTIONS, METRIC_NAMES
from nas.space import SearchSpace

METRICS = ("accuracy", "energy_mj", "f_aeb", "params", "sops", "macs", "firing_rate")
"""Per-trial results (user attrs) that become columns of `trials_frame`."""


def _front_kind(objective: str) -> str:
    """The multi-objective kind whose front a study of kind `objective` is read by."""
    if objective not in METRIC_NAMES:
        raise ValueError(f"unknown objective {objective!r}; choose from {list(METRIC_NAMES)}")
    return objective if len(METRIC_NAMES[objective]) > 1 else "pareto"


def front_columns(objective: str = "pareto") -> list[str]:
    """The columns whose Pareto front a study of kind `objective` is read by, in order.

    ``pareto3``: accuracy, energy_mj, params; ``pareto`` and ``aeb``: accuracy, energy_mj.

    Raises:
        ValueError: for an unknown kind of study.
    """
    return list(METRIC_NAMES[_front_kind(objective)])


def _maximised(objective: str) -> list[bool]:
    """Whether each of `front_columns(objective)` is maximised."""
    return [d == "maximize" for d in DIRECTIONS[_front_kind(objective)]]


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


def _feasible(frame: pd.DataFrame, columns: Sequence[str] = ("accuracy", "energy_mj")) -> pd.DataFrame:
    """Feasible rows with every one of `columns` known; a frame without ``feasible`` is all feasible."""
    rows = frame[frame["feasible"].astype(bool)] if "feasible" in frame else frame
    return rows.dropna(subset=list(columns))


def pareto_front(frame: pd.DataFrame, *, objective: str = "pareto") -> pd.DataFrame:
    """The non-dominated feasible rows: maximum accuracy, minimum energy (and, for
    ``pareto3``, minimum parameters).

    Rows with the same objective values as an earlier trial, such as duplicates that
    copied their twin's results, are dropped (the lowest trial number stays).

    Args:
        frame: Rows with the `front_columns` of `objective` (and optionally ``number`` and
            ``feasible``), e.g. from `trials_frame`.
        objective: The kind of study; see the module doc.

    Returns:
        The front, sorted by energy (lowest first), then by accuracy (highest first) and
        parameters (fewest first), with a fresh index.
    """
    columns = front_columns(objective)
    rows = _feasible(frame, columns)
    if "number" in rows:
        rows = rows.sort_values("number")
    if rows.empty:
        return rows.reset_index(drop=True)
    points = rows[columns].to_numpy(dtype=float)
    keep = moocore.is_nondominated(points, maximise=_maximised(objective), keep_weakly=False)
    # Beyond accuracy and energy, the front columns (params) are minimised.
    extra = columns[2:]
    return rows[keep].sort_values(["energy_mj", "accuracy", *extra], ascending=[True, False] + [True] * len(extra),
                                  ignore_index=True)


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


def knee(front: pd.DataFrame, *, objective: str = "pareto") -> pd.Series:
    """The knee of a Pareto front: the point closest to the utopia point, once normalised.

    Each objective is scaled to [0, 1] over the front with 1 the best value (most accurate,
    least energy, fewest parameters), so the utopia point is (1, ..., 1); the knee is the
    point nearest to it in L1 distance, that is the one with the largest sum of scaled
    values. On a 2-D front this is the point furthest from the line joining the front's
    extremes, on the ideal side (more accuracy for its energy): a signed distance, because
    a point on the far side of that line is a poor trade-off, not a knee. L1 rather than
    Euclidean keeps that 2-D meaning, and ranks the points of a 3-D front by the same
    equal-weight trade-off. An objective without spread over the front counts for nothing.
    Ties, such as a front of one or two points, go to the more accurate point.

    Args:
        front: A Pareto front, e.g. from `pareto_front` with the same `objective`.
        objective: The kind of study; see the module doc.

    Raises:
        ValueError: if the front is empty.
    """
    if front.empty:
        raise ValueError("the Pareto front is empty: no feasible complete trial")
    # The sum of the scaled maximised columns minus that of the minimised ones: the utopia
    # distance up to a constant, and bit for bit the 2-D signed distance from the diagonal.
    score = np.zeros(len(front))
    for column, maximised in zip(front_columns(objective), _maximised(objective)):
        scaled = _unit(front[column].to_numpy(dtype=float))
        score += scaled if maximised else -scaled
    accuracy = front["accuracy"].to_numpy(dtype=float)
    order = np.lexsort((-accuracy, -score))
    return front.iloc[order[0]]


def _error_and_costs(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Minimised points of `rows`: 1 - accuracy, then the other columns as they are."""
    return np.column_stack([1.0 - rows[c].to_numpy(dtype=float) if c == "accuracy" else rows[c].to_numpy(dtype=float)
                            for c in columns])


def default_ref_point(frame: pd.DataFrame, *, objective: str = "pareto") -> tuple[float, ...]:
    """The default hypervolume reference point: 1.0 for the error (1 - accuracy), and 1.1 x
    the highest value in `frame` of every other front column (energy_mj; params for
    ``pareto3``), 1.0 where a column holds no value."""
    ref = [1.0]
    for column in front_columns(objective)[1:]:
        highest = frame[column].max()
        ref.append(1.1 * float(highest) if pd.notna(highest) else 1.0)
    return tuple(ref)


def hypervolume_history(frame: pd.DataFrame, ref_point: Sequence[float] | None = None, *,
                        objective: str = "pareto") -> pd.DataFrame:
    """Hypervolume of the feasible front after each complete trial.

    Points are (1 - accuracy, energy_mj), or (1 - accuracy, energy_mj, params) for
    ``pareto3``, all minimised; the hypervolume is the area (volume) they dominate up to
    `ref_point`, in the units of those columns (error fraction x mJ, x parameters for
    ``pareto3``), computed by `moocore`. The values are not normalised, so only curves with
    the same reference point compare.

    Args:
        frame: Rows with ``number`` and the `front_columns` of `objective` (and optionally
            ``feasible``).
        ref_point: One reference value per point coordinate. Default (`default_ref_point`):
            1.0 for the error and 1.1 x the highest value of any row of `frame` in every
            other coordinate, so every trial better than chance on every count adds volume
            and the curve of one study is comparable over time. For a ``pareto3`` study the
            highest parameter count is, unless budgets forbid it, the largest subnet's
            (`create` enqueues it), just as the highest energy is about E_ref.
        objective: The kind of study; see the module doc.

    Returns:
        Columns ``n_trials`` (complete trials so far), ``number`` (the trial just
        completed) and ``hypervolume`` (non-decreasing). ``attrs["ref_point"]`` holds the
        reference point used and ``attrs["columns"]`` the front columns the points come
        from (accuracy standing for 1 - accuracy).
    """
    columns = front_columns(objective)
    rows = frame.sort_values("number", ignore_index=True)
    ref = tuple(float(v) for v in ref_point) if ref_point is not None else default_ref_point(rows, objective=objective)
    if len(ref) != len(columns):
        names = ", ".join("error" if c == "accuracy" else c for c in columns)
        count = {2: "two", 3: "three"}[len(columns)]
        raise ValueError(f"ref_point={ref_point} must be {count} numbers: ({names})")
    feasible = rows.index.isin(_feasible(rows, columns).index)
    points = _error_and_costs(rows, columns)
    volumes = []
    for n in range(1, len(rows) + 1):
        seen = points[:n][feasible[:n]]
        volumes.append(float(moocore.hypervolume(seen, ref=ref)) if len(seen) else 0.0)
    history = pd.DataFrame({"n_trials": np.arange(1, len(rows) + 1), "number": rows["number"].to_numpy(),
                            "hypervolume": volumes})
    history.attrs["ref_point"] = ref
    history.attrs["columns"] = tuple(columns)
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
    """What ``autospk-study show`` lists: the Pareto front (2-D for ``pareto``, 3-D for
    ``pareto3``), or the `top` feasible trials by F_AEB (``aeb``)."""
    if len(METRIC_NAMES[objective]) > 1:
        return pareto_front(frame, objective=objective)
    return _feasible(frame).sort_values("f_aeb", ascending=False).head(top)
