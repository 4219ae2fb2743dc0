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
the study, JSON and CSV); only figures and display tables show accuracy in percent and energy
in the unit `energy_unit` picks for their values (mJ, µJ, nJ or pJ), named in the header.

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

from models import BLOCK_GENES, GLOBAL_GENES, SubnetConfig
from nas.fitness import AEBSettings, energy_for_accuracy, f_aeb
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
    feasible = rows.index.isin(_feasible(rows, columns).index)
    points = _error_and_costs(rows, columns)
    box = float(np.prod(ref)) if normalise else 1.0
    volumes = []
    for n in range(1, len(rows) + 1):
        seen = points[:n][feasible[:n]]
        seen = seen[(seen < np.asarray(ref)).all(axis=1)]
        volumes.append(float(moocore.hypervolume(seen, ref=ref)) / box if len(seen) else 0.0)
    history = pd.DataFrame({"n_trials": np.arange(1, len(rows) + 1), "number": rows["number"].to_numpy(),
                            "hypervolume": volumes})
    history.attrs["ref_point"] = ref
    history.attrs["columns"] = tuple(columns)
    history.attrs["normalised"] = normalise
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


BASELINE_MARK = "baseline"
KNEE_MARK = "knee"
"""The knee of the front: what ``export --trial knee`` picks."""
BEST_MARK = "best"
"""The feasible trial with the highest F_AEB: what ``export --trial best`` picks."""


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
"""What `front_table` writes in its ``note`` column on the baseline's row."""


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
    return _feasible(frame).sort_values("f_aeb", ascending=False).head(top)
