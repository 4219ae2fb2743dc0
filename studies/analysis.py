"""Results of a study as tables: trials, Pareto front, F_AEB best, knee, hypervolume.

The table functions are pure (a `pandas.DataFrame` in, a frame or a row out) so that the
CLI, the HTML report and the notebook agree, and tests can check them on hand-made frames.
`trials_frame` builds the frame from a study's complete trials; its gene columns come from
the study's search space. Loading studies and supernets lives in `studies.study`.

The front functions take the kind of study (`nas.settings.OBJECTIVES`): a ``pareto3``
study's front is the 3-D one of (accuracy, energy_mj, params); a ``pareto`` or ``aeb``
study's is the 2-D one of (accuracy, energy_mj) (an aeb study optimises one number, and its
trade-off is read in that plane).

Accuracy is kept as a fraction in [0, 1] and energy in mJ per image in every frame (and in
the study, JSON and CSV); only figures and the display tables of `studies.formatting` show
accuracy in percent and energy in a unit named in their header.

The baseline of a study is the first complete trial of its space's largest subnet, the
hand-designed Spikformer point whose energy is E_ref: `create` enqueues it as trial 0.
`compare_to_baseline` states every trial against it and against the same network run as an
ANN (``ann_energy_mj``: E_MAC x dense MACs, see `energy.ann_energy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import moocore
import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial

from models import GLOBAL_GENES, SubnetConfig
from nas.fitness import AEBSettings, f_aeb
from nas.settings import DIRECTIONS, ENERGY_MODEL_NAMES, METRIC_NAMES
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


BASELINE_COLUMNS = ("accuracy_vs_baseline", "energy_vs_baseline", "energy_vs_ann")
"""Columns `compare_to_baseline` adds: accuracy minus the baseline's (a difference of
fractions), energy over the baseline's and over the same network's as an ANN (ratios)."""


def frame_columns(space: SearchSpace) -> list[str]:
    """Columns of `trials_frame` for a study on `space`, in order."""
    return ["number", *METRICS, "ann_energy_mj", *space.param_names(), "arch_id", "feasible", "duplicate_of",
            "baseline"]


def trials_frame(trials: Sequence[FrozenTrial], space: SearchSpace, *,
                 ann_energy: Callable[[SubnetConfig], float] | None = None) -> pd.DataFrame:
    """One row per complete trial, ordered by trial number.

    Columns (see `frame_columns`): ``number``; the metrics of `METRICS` (``accuracy`` as a
    fraction in [0, 1], ``energy_mj`` in mJ per image); ``ann_energy_mj``, the energy of the
    same network run as an ANN (NaN without `ann_energy`); every gene of the genome
    (``depth``, ``embed_dim``, ``time_steps``, then ``num_heads_0``, ``mlp_ratio_0``, ...),
    where genes of blocks at or beyond ``depth`` are dormant and NaN; ``arch_id``;
    ``feasible`` (every Optuna constraint <= 0, True without budgets); ``duplicate_of``
    (the trial whose results a duplicate copied, else missing); ``baseline``, True on the
    lowest-numbered trial of the space's largest subnet (see the module doc) only; then
    ``energy_mj_<model>`` for every energy model some trial recorded (NaN where a trial did
    not), in the order of `nas.settings.ENERGY_MODEL_NAMES`.

    Args:
        trials: COMPLETE trials of a study.
        space: Its search space.
        ann_energy: mJ per image of a subnet run as an ANN (`energy.ann_energy`).

    Returns:
        The frame; empty, with the same columns, when there are no trials.
    """
    columns = frame_columns(space)
    rows = []
    energies: dict[str, list[float]] = {}
    for position, trial in enumerate(trials):
        attrs = trial.user_attrs
        for model, value in (attrs.get("energies_mj") or {}).items():
            energies.setdefault(model, [math.nan] * len(trials))[position] = float(value)
        row: dict[str, Any] = {"number": trial.number}
        row.update({name: attrs.get(name, math.nan) for name in METRICS})
        row["ann_energy_mj"] = (ann_energy(space.config_from_params(trial.params)) if ann_energy is not None
                                else math.nan)
        depth = int(trial.params["depth"])
        for name in space.param_names():
            block = int(name.rsplit("_", 1)[1]) if name not in GLOBAL_GENES else -1
            row[name] = trial.params[name] if block < depth else math.nan
        row["arch_id"] = attrs.get("arch_id")
        row["feasible"] = all(value <= 0 for value in trial.constraints.values())
        row["duplicate_of"] = attrs.get("duplicate_of")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    for model in ENERGY_MODEL_NAMES:
        if model in energies:
            frame[f"energy_mj_{model}"] = energies[model]
    frame["duplicate_of"] = frame["duplicate_of"].astype("Int64")
    frame["feasible"] = frame["feasible"].astype(bool)
    frame = frame.sort_values("number", ignore_index=True)
    largest = frame.index[frame["arch_id"] == space.largest().arch_id]
    frame["baseline"] = frame.index.isin(largest[:1])
    return frame


def baseline(frame: pd.DataFrame) -> pd.Series | None:
    """The baseline row of a `trials_frame` (the space's largest subnet), or None if it has
    not completed (or `create` was told not to enqueue it and no trial drew it)."""
    if "baseline" not in frame:
        return None
    rows = frame[frame["baseline"].astype(bool)]
    return rows.iloc[0] if len(rows) else None


def compare_to_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the `BASELINE_COLUMNS`: each row against the baseline and the ANN.

    ``accuracy_vs_baseline`` = accuracy - the baseline's (fractions; NaN without a baseline),
    ``energy_vs_baseline`` = energy_mj / the baseline's, ``energy_vs_ann`` = energy_mj /
    ann_energy_mj (the same network run as an ANN).
    """
    out = frame.copy()
    base = baseline(frame)
    out["accuracy_vs_baseline"] = frame["accuracy"] - (base["accuracy"] if base is not None else math.nan)
    out["energy_vs_baseline"] = frame["energy_mj"] / (base["energy_mj"] if base is not None else math.nan)
    ann = frame["ann_energy_mj"] if "ann_energy_mj" in frame else math.nan
    out["energy_vs_ann"] = frame["energy_mj"] / ann
    return out


def recorded_energy_models(frame: pd.DataFrame) -> list[str]:
    """The energy models whose energy some row of a `trials_frame` recorded."""
    return [m for m in ENERGY_MODEL_NAMES if f"energy_mj_{m}" in frame and frame[f"energy_mj_{m}"].notna().any()]


def under_energy_model(frame: pd.DataFrame, model: str, aeb: AEBSettings) -> tuple[pd.DataFrame, AEBSettings]:
    """`frame` (a `trials_frame`) as if its study had searched under energy model `model`.

    ``energy_mj`` becomes the trials' recorded energy under `model`; rows that did not record
    it are dropped; F_AEB is recomputed with E_ref = the baseline's energy under `model` (or,
    without a baseline, `aeb`'s E_ref scaled by the median ratio of the two models); the
    energy as an ANN is E_MAC x dense MACs, a comparison of the ``ops`` model only, and is
    NaN under any other. Nothing is evaluated again.

    Returns:
        The frame, compared to its baseline again, and the F_AEB settings it was scored with.

    Raises:
        ValueError: naming the models the trials recorded, if `model` is not one of them.
    """
    recorded = recorded_energy_models(frame)
    if model not in recorded:
        raise ValueError(f"no trial recorded energy model {model!r}; these trials recorded {recorded or 'none'} "
                         "(lemaire is recorded only for studies created with --record-energy-models lemaire "
                         "or --energy-model lemaire)")
    column = f"energy_mj_{model}"
    out = frame.dropna(subset=[column]).copy()
    base = baseline(out)
    if base is not None:
        e_ref = float(base[column])
    else:
        e_ref = float(aeb.e_ref * np.median(out[column] / out["energy_mj"]))
    out["energy_mj"] = out[column]
    scored = AEBSettings(alpha=aeb.alpha, beta=aeb.beta, e_ref=e_ref)
    out["f_aeb"] = [f_aeb(a, e, scored) for a, e in zip(out["accuracy"], out["energy_mj"])]
    if model != "ops":
        out["ann_energy_mj"] = math.nan
    return compare_to_baseline(out.reset_index(drop=True)), scored


def front_changes(frame: pd.DataFrame, models: Sequence[str], *, objective: str = "pareto") -> pd.DataFrame:
    """Which trials are on the Pareto front under each of `models` (recorded energy models).

    Returns:
        One row per trial on at least one of the fronts, by trial number: ``number``,
        ``accuracy``, and per model ``energy_mj_<model>`` and ``on_<model>`` (bool).
    """
    numbers: dict[str, set[int]] = {}
    for model in models:
        shown, _ = under_energy_model(frame, model, AEBSettings(e_ref=1.0))
        numbers[model] = set(pareto_front(shown, objective=objective)["number"].astype(int))
    union = sorted(set().union(*numbers.values()))
    rows = frame.set_index("number").loc[union]
    out = pd.DataFrame({"number": union, "accuracy": rows["accuracy"].to_numpy()})
    for model in models:
        out[f"energy_mj_{model}"] = rows[f"energy_mj_{model}"].to_numpy()
        out[f"on_{model}"] = [n in numbers[model] for n in union]
    return out


def feasible(frame: pd.DataFrame, columns: Sequence[str] = ("accuracy", "energy_mj")) -> pd.DataFrame:
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
    rows = feasible(frame, columns)
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
    rows = feasible(frame).dropna(subset=["f_aeb"])
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


def mark_choices(rows: pd.DataFrame, frame: pd.DataFrame, objective: str) -> pd.DataFrame:
    """`rows` with the bool columns ``knee`` and ``best_f_aeb``: whether each row is the trial
    that ``export --trial knee`` (of `frame`'s front) or ``--trial best`` picks."""
    out = rows.copy()
    front = pareto_front(frame, objective=objective)
    knee_number = int(knee(front, objective=objective)["number"]) if not front.empty else None
    try:
        best_number = int(best_aeb(frame)["number"])
    except ValueError:
        best_number = None
    out["knee"] = out["number"].astype(int) == knee_number
    out["best_f_aeb"] = out["number"].astype(int) == best_number
    return out
def with_baseline_row(rows: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """`rows` of `frame`, and the baseline's row last if `rows` lack it (and `frame` has one)."""
    base = baseline(frame)
    if base is None or ("baseline" in rows and rows["baseline"].astype(bool).any()):
        return rows
    return pd.concat([rows, frame[frame["baseline"].astype(bool)]], ignore_index=True)


def shown_trials(frame: pd.DataFrame, objective: str, top: int) -> pd.DataFrame:
    """What ``autospk-study show`` lists: the Pareto front (2-D for ``pareto``, 3-D for
    ``pareto3``), or the `top` feasible trials by F_AEB (``aeb``)."""
    if len(METRIC_NAMES[objective]) > 1:
        return pareto_front(frame, objective=objective)
    return feasible(frame).sort_values("f_aeb", ascending=False).head(top)
