"""Hypervolume of a study's trials: the reference point of its report, and the volume its
front covers after each trial (computed by moocore)."""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import pandas as pd

from .analysis import feasible, front_columns


def _error_and_costs(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Minimised points of `rows`: 1 - accuracy, then the other columns as they are."""
    return np.column_stack([1.0 - rows[c].to_numpy(dtype=float) if c == "accuracy" else rows[c].to_numpy(dtype=float)
                            for c in columns])


ERROR_REF = 0.2
"""Error coordinate of `study_ref_point`: subnets at least 80% accurate add volume."""


def study_ref_point(e_ref: float, *, baseline_accuracy: float | None = None, params_ref: int | None = None,
                    objective: str = "pareto") -> tuple[float, ...]:
    """The hypervolume reference point of a study's report, that of ``benchmarks/bench_search.py``.

    (0.2, E_ref): the volume is that of subnets at least 80% accurate and no costlier than
    the largest subnet, whose energy E_ref is by default; for ``pareto3`` the third
    coordinate is the largest subnet's parameter count `params_ref`. When the baseline
    (the largest subnet) is itself less than 80% accurate (a hard data set), that box would
    hold nothing, and the error coordinate is 1.0 instead: every subnet no costlier than the
    largest adds volume.

    Args:
        e_ref: The study's reference energy in mJ.
        baseline_accuracy: The baseline's accuracy, if known.
        params_ref: ``pareto3`` only: the largest subnet's parameter count.
        objective: The kind of study.

    Raises:
        ValueError: for ``pareto3`` without `params_ref`.
    """
    error = ERROR_REF
    if baseline_accuracy is not None and 1.0 - baseline_accuracy >= ERROR_REF:
        error = 1.0
    ref: tuple[float, ...] = (error, float(e_ref))
    if len(front_columns(objective)) == 3:
        if params_ref is None:
            raise ValueError("a pareto3 reference point needs params_ref, the largest subnet's parameter count")
        ref += (float(params_ref),)
    return ref


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
                        objective: str = "pareto", normalise: bool = False) -> pd.DataFrame:
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
        normalise: Divide by the volume of the box from the origin to `ref_point`, as
            ``benchmarks/bench_search.py`` reports it: a share in [0, 1]. Points outside
            the box add nothing.

    Returns:
        Columns ``n_trials`` (complete trials so far), ``number`` (the trial just
        completed) and ``hypervolume`` (non-decreasing). ``attrs["ref_point"]`` holds the
        reference point used, ``attrs["columns"]`` the front columns the points come
        from (accuracy standing for 1 - accuracy) and ``attrs["normalised"]`` `normalise`.
    """
    columns = front_columns(objective)
    rows = frame.sort_values("number", ignore_index=True)
    ref = tuple(float(v) for v in ref_point) if ref_point is not None else default_ref_point(rows, objective=objective)
    if len(ref) != len(columns):
        names = ", ".join("error" if c == "accuracy" else c for c in columns)
        count = {2: "two", 3: "three"}[len(columns)]
        raise ValueError(f"ref_point={ref_point} must be {count} numbers: ({names})")
    usable = rows.index.isin(feasible(rows, columns).index)
    points = _error_and_costs(rows, columns)
    box = float(np.prod(ref)) if normalise else 1.0
    volumes = []
    for n in range(1, len(rows) + 1):
        seen = points[:n][usable[:n]]
        seen = seen[(seen < np.asarray(ref)).all(axis=1)]
        volumes.append(float(moocore.hypervolume(seen, ref=ref)) / box if len(seen) else 0.0)
    history = pd.DataFrame({"n_trials": np.arange(1, len(rows) + 1), "number": rows["number"].to_numpy(),
                            "hypervolume": volumes})
    history.attrs["ref_point"] = ref
    history.attrs["columns"] = tuple(columns)
    history.attrs["normalised"] = normalise
    return history
