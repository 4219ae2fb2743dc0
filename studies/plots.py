"""Plotly figures of a study (`studies.report` gathers them into one HTML page).

Every figure takes a frame from `studies.analysis` and returns a `plotly.graph_objects.Figure`,
so the notebook shows exactly what the report holds. Accuracy is plotted in percent and
energy per image in the unit `formatting.energy_unit` picks for each figure's values (mJ, µJ,
nJ or pJ); the axes say which, and a button switches every energy axis to a log scale.
`front_figures` picks the front figures of a kind of study: the accuracy-energy plane for
``aeb`` and ``pareto``; for ``pareto3`` a 3-D scatter of accuracy, energy and parameters,
and its three pairwise projections. The study's baseline (its largest subnet) is marked in
each, and hovering a trial states it against the baseline and against the same network
run as an ANN.

`use_notebook_renderers` makes a notebook's figures show outside a live Jupyter too.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from models import BLOCK_GENES, GLOBAL_GENES

from . import analysis, formatting

PARETO_TITLE = "Pareto front: accuracy vs energy"
PARETO3_TITLE = "Pareto front in 3-D: accuracy, energy and parameters"
PROJECTIONS_TITLE = "The 3-D Pareto front seen two objectives at a time"
HYPERVOLUME_TITLE = "Hypervolume of the feasible front"
BREAKDOWN_TITLE = "Energy per layer"
GENES_TITLE = "Genes of every trial"

ACCURACY_LABEL = "validation accuracy (%)"
ENERGY_LABEL = "energy per image ({unit})"
"""Label of an energy axis; ``{unit}`` is the figure's energy unit."""
PARAMS_LABEL = "parameters"
HYPERVOLUME_LABEL = "hypervolume ((1 − accuracy) × mJ)"
HYPERVOLUME3_LABEL = "hypervolume ((1 − accuracy) × mJ × parameters)"
HYPERVOLUME_SHARE_LABEL = "hypervolume (share of the reference box)"

_HYPERVOLUME_LABELS = {2: HYPERVOLUME_LABEL, 3: HYPERVOLUME3_LABEL}
# The pairs of the projections figure: (x, y) columns, accuracy on y as in the 2-D figure.
_PROJECTIONS = (("energy_mj", "accuracy"), ("params", "accuracy"), ("energy_mj", "params"))

_ENERGY_FORMAT = ".3~g"
_TEMPLATE = "plotly_white"
_FRONT = "#d62728"
_DOMINATED = "#1f77b4"
_BASELINE = "#2ca02c"
_KIND_COLOURS = {"MAC": "#ff7f0e", "AC": "#1f77b4", "NEURON": "#9467bd"}
_KIND_NAMES = {"MAC": "MAC (real-valued input)", "AC": "AC (spike-driven)",
               "NEURON": "neuron updates and spikes routed"}
MODELS_TITLE = "The front under two energy models"
_BOTH, _ONLY = "#2ca02c", "#d62728"

Unit = tuple[str, float]


def energy_label(unit: Unit) -> str:
    """The title of an energy axis in `unit`, e.g. ``energy per image (nJ)``."""
    return ENERGY_LABEL.format(unit=unit[0])


def _title(text: str, subtitle: str | None = None) -> dict[str, Any]:
    title: dict[str, Any] = {"text": text, "x": 0.0, "xanchor": "left"}
    if subtitle:
        title["subtitle"] = {"text": subtitle}
    return title


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"template": _TEMPLATE, "title": _title(title)})
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def _axis_values(rows: pd.DataFrame, column: str, unit: Unit) -> pd.Series:
    if column == "accuracy":
        return 100 * rows[column]
    return unit[1] * rows[column] if column == "energy_mj" else rows[column]


def _axis(column: str, unit: Unit) -> dict[str, Any]:
    """Layout of an axis that shows `column`."""
    if column == "energy_mj":
        return {"title": {"text": energy_label(unit)}, "tickformat": _ENERGY_FORMAT}
    return {"title": {"text": ACCURACY_LABEL if column == "accuracy" else PARAMS_LABEL}}


def log_scale_menu(axes: list[str]) -> dict[str, Any]:
    """Buttons that switch the energy axes named (``xaxis``, ``scene.xaxis``, ...) between a
    linear and a log scale: energies of one study span orders of magnitude."""
    def scale(kind: str) -> dict[str, str]:
        return {f"{axis}.type": kind for axis in axes}

    return {"type": "buttons", "direction": "left", "showactive": True, "active": 0,
            "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom", "pad": {"b": 4},
            "buttons": [{"label": "energy: linear", "method": "relayout", "args": [scale("linear")]},
                        {"label": "energy: log", "method": "relayout", "args": [scale("log")]}]}


def _versus(row: pd.Series) -> str:
    """A trial against the baseline and the ANN, for its hover text."""
    parts = []
    if pd.notna(row.get("accuracy_vs_baseline")):
        parts.append(f"vs baseline: {100 * row['accuracy_vs_baseline']:+.2f} pp accuracy, "
                     f"{row['energy_vs_baseline']:.3g} × energy")
    if pd.notna(row.get("energy_vs_ann")):
        parts.append(f"vs the same ANN: {row['energy_vs_ann']:.3g} × energy")
    return "<br>".join(parts)


def _points(rows: pd.DataFrame, name: str, marker: dict[str, Any], unit: Unit, mode: str = "markers",
            line: dict[str, Any] | None = None,
            axes: tuple[str, ...] = ("energy_mj", "accuracy"), **trace: Any) -> go.Scatter | go.Scatter3d:
    """A trace of trials on the given axes (two: a plane, three: a 3-D scatter), with the
    trial, its results, how it compares with the baseline and the ANN, and its genes on hover."""
    custom = [[int(row["number"]), row["f_aeb"], formatting.architecture_text(row, "<br>"), 100 * row["accuracy"],
               unit[1] * row["energy_mj"], row.get("params"), _versus(row)] for _, row in rows.iterrows()]
    coordinates = dict(zip("xyz", (_axis_values(rows, column, unit) for column in axes)))
    kind = go.Scatter3d if len(axes) == 3 else go.Scatter
    return kind(
        **coordinates, mode=mode, name=name, marker=marker, line=line, customdata=custom,
        hovertemplate=("<b>trial %{customdata[0]}</b><br>accuracy %{customdata[3]:.2f} %<br>"
                       f"energy %{{customdata[4]:.4g}} {unit[0]}<br>parameters %{{customdata[5]:,}}<br>"
                       "F_AEB %{customdata[1]:.4f}<br>%{customdata[6]}<br>%{customdata[2]}"
                       "<extra>%{fullData.name}</extra>"),
        **trace,
    )


def _baseline_name(base: pd.Series) -> str:
    return f"baseline: largest subnet (trial {int(base['number'])})"


def _baseline_text(base: pd.Series | None, unit: Unit) -> str:
    if base is None:
        return "baseline (largest subnet) not evaluated yet"
    return (f"baseline trial {int(base['number'])} (largest subnet): {100 * base['accuracy']:.2f} %, "
            f"{formatting.format_energy(base['energy_mj'], unit)}")


def _split(rows: pd.DataFrame, objective: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The front of `rows`, its dominated feasible rows and its infeasible rows."""
    front = analysis.pareto_front(rows, objective=objective)
    feasible = rows["feasible"].astype(bool)
    return front, rows[feasible & ~rows["number"].isin(front["number"])], rows[~feasible]


def pareto_figure(frame: pd.DataFrame, *, title: str = PARETO_TITLE) -> go.Figure:
    """Every complete trial in the accuracy-energy plane, the front highlighted.

    Dominated trials are faded, over-budget trials drawn as crosses, the front joined by a
    line, the F_AEB-best trial marked by a star, the knee of the front by a diamond and the
    baseline (the largest subnet) by a green square.

    Args:
        frame: From `studies.study.trials_frame` (or `analysis.trials_frame`).
        title: Figure title.
    """
    rows = frame.dropna(subset=["accuracy", "energy_mj"])
    if rows.empty:
        return _empty(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    front, dominated, infeasible = _split(rows, "pareto")
    fig = go.Figure()
    fig.add_trace(_points(dominated, "dominated trials", {"color": _DOMINATED, "size": 8, "opacity": 0.35}, unit))
    if not infeasible.empty:
        fig.add_trace(_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 8, "symbol": "x", "opacity": 0.6}, unit))
    if not front.empty:
        fig.add_trace(_points(front, f"Pareto front ({len(front)} trials)",
                              {"color": _FRONT, "size": 10, "line": {"color": "white", "width": 1}}, unit,
                              mode="lines+markers", line={"color": _FRONT, "width": 2, "shape": "hv"}))
        best = analysis.best_aeb(rows)
        fig.add_trace(_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 20, "symbol": "star",
                               "line": {"color": "black", "width": 1.5}}, unit))
        knee = analysis.knee(front)
        fig.add_trace(_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 28, "symbol": "diamond-open", "line": {"width": 2}}, unit))
    base = analysis.baseline(rows)
    if base is not None:
        fig.add_trace(_points(base.to_frame().T, _baseline_name(base),
                              {"color": _BASELINE, "size": 18, "symbol": "square-open", "line": {"width": 3}}, unit))
    fig.update_layout(
        template=_TEMPLATE, height=560,
        title=_title(title, f"{len(rows)} complete trials; {_baseline_text(base, unit)}; hover a point for its "
                            "architecture"),
        xaxis=_axis("energy_mj", unit), yaxis=_axis("accuracy", unit),
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        hoverlabel={"align": "left"}, updatemenus=[log_scale_menu(["xaxis"])], margin={"t": 110},
    )
    return fig


def pareto3d_figure(frame: pd.DataFrame, *, title: str = PARETO3_TITLE) -> go.Figure:
    """Every complete trial in (energy, parameters, accuracy) space, the 3-D front highlighted.

    Dominated trials are faded, over-budget trials drawn as crosses, the F_AEB-best trial
    marked by a gold square, the knee of the front (`analysis.knee`) by a diamond and the
    baseline (the largest subnet) by a green open square.

    Args:
        frame: From `studies.study.trials_frame` of a ``pareto3`` study (any study's frame works).
        title: Figure title.
    """
    rows = frame.dropna(subset=analysis.front_columns("pareto3"))
    if rows.empty:
        return _empty(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    axes = ("energy_mj", "params", "accuracy")
    front, dominated, infeasible = _split(rows, "pareto3")
    fig = go.Figure()
    fig.add_trace(_points(dominated, "dominated trials", {"color": _DOMINATED, "size": 4, "opacity": 0.4}, unit,
                          axes=axes))
    if not infeasible.empty:
        fig.add_trace(_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 4, "symbol": "x", "opacity": 0.6}, unit, axes=axes))
    if not front.empty:
        fig.add_trace(_points(front, f"Pareto front ({len(front)} trials)", {"color": _FRONT, "size": 6}, unit,
                              axes=axes))
        best = analysis.best_aeb(rows)
        fig.add_trace(_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 9, "symbol": "square", "line": {"color": "black", "width": 1}},
                              unit, axes=axes))
        knee = analysis.knee(front, objective="pareto3")
        fig.add_trace(_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 12, "symbol": "diamond-open"}, unit, axes=axes))
    base = analysis.baseline(rows)
    if base is not None:
        fig.add_trace(_points(base.to_frame().T, _baseline_name(base),
                              {"color": _BASELINE, "size": 12, "symbol": "square-open"}, unit, axes=axes))
    fig.update_layout(
        template=_TEMPLATE, height=680,
        title=_title(title, f"{len(rows)} complete trials; {_baseline_text(base, unit)}; drag to turn, hover a "
                            "point for its architecture"),
        scene={"xaxis": _axis("energy_mj", unit), "yaxis": _axis("params", unit), "zaxis": _axis("accuracy", unit)},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        hoverlabel={"align": "left"}, margin={"t": 110}, updatemenus=[log_scale_menu(["scene.xaxis"])],
    )
    return fig


def projections_figure(frame: pd.DataFrame, *, title: str = PROJECTIONS_TITLE) -> go.Figure:
    """The trials of a ``pareto3`` study in each plane of two objectives, the 3-D front highlighted.

    A point of the 3-D front may look dominated in a plane: it is better in the third
    objective. The knee of the 3-D front and the baseline are marked in every plane.

    Args:
        frame: From `studies.study.trials_frame` of a ``pareto3`` study (any study's frame works).
        title: Figure title.
    """
    rows = frame.dropna(subset=analysis.front_columns("pareto3"))
    if rows.empty:
        return _empty(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    front, dominated, infeasible = _split(rows, "pareto3")
    names = {"energy_mj": "energy", "params": "parameters", "accuracy": "accuracy"}
    fig = make_subplots(rows=1, cols=len(_PROJECTIONS), horizontal_spacing=0.08,
                        subplot_titles=[f"{names[y]} vs {names[x]}" for x, y in _PROJECTIONS])
    knee = analysis.knee(front, objective="pareto3").to_frame().T if not front.empty else front
    base = analysis.baseline(rows)
    groups = [
        (dominated, "dominated trials", {"color": _DOMINATED, "size": 7, "opacity": 0.35}),
        (infeasible, "over budget (infeasible)", {"color": "#7f7f7f", "size": 7, "symbol": "x", "opacity": 0.6}),
        (front, f"3-D Pareto front ({len(front)} trials)",
         {"color": _FRONT, "size": 9, "line": {"color": "white", "width": 1}}),
        (knee, "knee of the 3-D front", {"color": "black", "size": 22, "symbol": "diamond-open", "line": {"width": 2}}),
    ]
    if base is not None:
        groups.append((base.to_frame().T, _baseline_name(base),
                       {"color": _BASELINE, "size": 16, "symbol": "square-open", "line": {"width": 3}}))
    energy_axes = []
    for col, axes in enumerate(_PROJECTIONS, start=1):
        for rows_of, name, marker in groups:
            if rows_of.empty:
                continue
            # One legend entry per group: the three planes show the same trials.
            fig.add_trace(_points(rows_of, name, marker, unit, axes=axes, legendgroup=name, showlegend=col == 1),
                          row=1, col=col)
        fig.update_xaxes(_axis(axes[0], unit), row=1, col=col)
        fig.update_yaxes(_axis(axes[1], unit), row=1, col=col)
        energy_axes += [f"{letter}axis{col if col > 1 else ''}" for letter, column in zip("xy", axes)
                        if column == "energy_mj"]
    fig.update_layout(
        template=_TEMPLATE, height=480,
        title=_title(title, "red: trials no other trial beats on all three of accuracy, energy and parameters; "
                            + _baseline_text(base, unit)),
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
        hoverlabel={"align": "left"}, margin={"t": 120}, updatemenus=[log_scale_menu(energy_axes)],
    )
    return fig


def front_figures(frame: pd.DataFrame, objective: str) -> list[tuple[str, go.Figure]]:
    """The figures of the Pareto front of a study of kind `objective`, each with a heading.

    ``pareto3``: the 3-D scatter and its pairwise projections; ``pareto`` and ``aeb``: the
    accuracy-energy plane.
    """
    if len(analysis.front_columns(objective)) == 3:
        return [("Pareto front (3-D)", pareto3d_figure(frame)),
                ("Pareto front, two objectives at a time", projections_figure(frame))]
    return [("Pareto front", pareto_figure(frame))]


def energy_breakdown_figure(layers: pd.DataFrame, title: str = BREAKDOWN_TITLE) -> go.Figure:
    """Energy per synaptic layer (per image), coloured by how it is charged.

    Args:
        layers: `energy.EnergyReport.layers` (layer, kind, dense_macs, input_rate, ops,
            energy_mj, energy_share), in forward order, e.g. from
            `studies.study.trial_layers` (stored with the trial).
        title: Figure title.
    """
    # Neuron rows cost nothing under the ops model: leave them out there.
    layers = layers[(layers["kind"] != "NEURON") | (layers["energy_mj"] > 0)]
    if layers.empty:
        return _empty(title, "no layers were measured")
    unit = formatting.energy_unit(layers["energy_mj"])
    fig = go.Figure()
    for kind in ("MAC", "AC", "NEURON"):
        rows = layers[layers["kind"] == kind]
        if rows.empty:
            continue
        fig.add_trace(go.Bar(
            x=unit[1] * rows["energy_mj"], y=rows["layer"], orientation="h", name=_KIND_NAMES[kind],
            marker_color=_KIND_COLOURS[kind],
            customdata=list(zip(rows["ops"], rows["input_rate"], 100 * rows["energy_share"])),
            hovertemplate=(f"<b>%{{y}}</b><br>energy %{{x:.4g}} {unit[0]} (%{{customdata[2]:.1f}} %)<br>"
                           "operations %{customdata[0]:.4g}<br>input spike rate %{customdata[1]:.3f}"
                           "<extra>%{fullData.name}</extra>"),
        ))
    total = float(layers["energy_mj"].sum())
    mac_share = float(layers.loc[layers["kind"] == "MAC", "energy_share"].sum())
    fig.update_layout(
        template=_TEMPLATE, height=190 + 20 * len(layers), barmode="overlay",
        title=_title(title, f"total {formatting.format_energy(total)} per image; "
                            f"{100 * mac_share:.1f} % in MAC layers"),
        xaxis=_axis("energy_mj", unit),
        yaxis={"title": {"text": "layer (forward order)"}, "categoryorder": "array",
               "categoryarray": list(layers["layer"]), "autorange": "reversed", "automargin": True},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0.0},
        margin={"t": 130}, updatemenus=[log_scale_menu(["xaxis"])],
    )
    return fig


def energy_models_figure(frame: pd.DataFrame, models: tuple[str, str], *, objective: str = "pareto",
                         title: str = MODELS_TITLE) -> go.Figure:
    """The Pareto front of the same trials under two recorded energy models, side by side.

    Each panel shows every trial in the accuracy-energy plane under one model; the trials on
    that model's front are marked green if they are on the other model's front too, red if
    only on this one. Nothing is evaluated again (`analysis.front_changes`).

    Args:
        frame: From `studies.study.trials_frame`, with ``energy_mj_<model>`` for both models.
        models: The two energy models.
        objective: The kind of study (its front is 3-D for ``pareto3``: points off the 2-D
            front can then be on it).
        title: Figure title.
    """
    changes = analysis.front_changes(frame, models, objective=objective)
    first, second = models
    stays = int((changes[f"on_{first}"] & changes[f"on_{second}"]).sum())
    fig = make_subplots(rows=1, cols=2, subplot_titles=[formatting.energy_model_text(m) for m in models],
                        horizontal_spacing=0.1)
    for col, (model, other) in enumerate(((first, second), (second, first)), start=1):
        rows = frame.dropna(subset=[f"energy_mj_{model}", "accuracy"])
        unit = formatting.energy_unit(rows[f"energy_mj_{model}"])
        on = changes[changes[f"on_{model}"]]
        both = set(on.loc[on[f"on_{other}"], "number"])
        groups = (("all trials", rows, {"color": _DOMINATED, "size": 7, "opacity": 0.3}),
                  (f"on both fronts ({len(both)})", rows[rows["number"].isin(both)],
                   {"color": _BOTH, "size": 11, "line": {"color": "white", "width": 1}}),
                  ("on this model's front only", rows[rows["number"].isin(set(on["number"]) - both)],
                   {"color": _ONLY, "size": 11, "symbol": "diamond", "line": {"color": "white", "width": 1}}))
        for name, part, marker in groups:
            fig.add_trace(go.Scatter(
                x=unit[1] * part[f"energy_mj_{model}"], y=100 * part["accuracy"], mode="markers", name=name,
                marker=marker, legendgroup=name, showlegend=col == 1,
                customdata=part["number"].astype(int),
                hovertemplate=f"<b>trial %{{customdata}}</b><br>accuracy %{{y:.2f}} %<br>energy %{{x:.4g}} {unit[0]}"
                              f" ({model})<extra>%{{fullData.name}}</extra>"), row=1, col=col)
        fig.update_xaxes(title_text=f"energy per image, {model} ({unit[0]})", tickformat=_ENERGY_FORMAT, row=1,
                         col=col)
        fig.update_yaxes(title_text=ACCURACY_LABEL, row=1, col=col)
    fig.update_layout(
        template=_TEMPLATE, height=520,
        title=_title(title, f"{stays} of the {int(changes[f'on_{first}'].sum())} trials on the {first} front stay on "
                            f"the {second} front; {int(changes[f'on_{second}'].sum())} trials on the {second} front"),
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0.0},
        margin={"t": 120},
    )
    return fig




def genes_parallel_figure(frame: pd.DataFrame, *, title: str = GENES_TITLE) -> go.Figure:
    """Parallel coordinates of the genes, accuracy and energy of every evaluated trial.

    Per-block genes are shown as their mean over the active blocks (one axis per gene, not
    per block, keeps the figure readable for deep spaces). Lines are coloured by F_AEB;
    duplicates, which repeat their twin's line, are left out.

    Args:
        frame: From `analysis.trials_frame`.
        title: Figure title.
    """
    rows = frame.dropna(subset=["accuracy", "energy_mj"])
    if "duplicate_of" in rows:
        rows = rows[rows["duplicate_of"].isna()]
    if rows.empty:
        return _empty(title, "no complete trials yet")
    dimensions = []
    for gene in GLOBAL_GENES:
        values = rows[gene].astype(float)
        dimensions.append({"label": gene, "values": values, "tickvals": sorted(values.unique())})
    for gene in BLOCK_GENES:
        columns = [c for c in rows.columns if c.rsplit("_", 1)[0] == gene and c.rsplit("_", 1)[-1].isdigit()]
        dimensions.append({"label": f"mean {gene}", "values": rows[columns].astype(float).mean(axis=1)})
    unit = formatting.energy_unit(rows["energy_mj"])
    dimensions.append({"label": "accuracy (%)", "values": 100 * rows["accuracy"], "tickformat": ".1f"})
    dimensions.append({"label": f"energy ({unit[0]})", "values": unit[1] * rows["energy_mj"],
                       "tickformat": _ENERGY_FORMAT})
    fig = go.Figure(go.Parcoords(
        dimensions=dimensions,
        line={"color": rows["f_aeb"], "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": "F_AEB"}}},
        labelangle=0, labelside="bottom",
    ))
    fig.update_layout(
        template=_TEMPLATE, height=480,
        title=_title(title, f"{len(rows)} evaluated architectures; per-block genes averaged over active "
                            "blocks; drag along an axis to filter"),
        margin={"l": 60, "r": 40, "t": 110, "b": 60},
    )
    return fig


def hypervolume_figure(history: pd.DataFrame, *, title: str = HYPERVOLUME_TITLE) -> go.Figure:
    """Hypervolume of the feasible front against the number of complete trials.

    Args:
        history: From `studies.study.study_hypervolume` (the reference point of
            ``benchmarks/bench_search.py``, as a share of its box) or
            `studies.hypervolume.hypervolume_history`. Its ``attrs["ref_point"]`` is stated on the
            figure; ``attrs["columns"]`` say whether the volume is 2-D or 3-D.
        title: Figure title.
    """
    if history.empty:
        return _empty(title, "no complete trials yet")
    columns = history.attrs.get("columns", ("accuracy", "energy_mj"))
    ref = history.attrs.get("ref_point")
    normalised = history.attrs.get("normalised", False)
    subtitle = None
    if ref:
        coordinates = []
        for column, value in zip(columns, ref):
            if column == "accuracy":
                coordinates.append(f"error {value:g}")
            elif column == "energy_mj":
                coordinates.append(f"energy {formatting.format_energy(value)}")
            else:
                coordinates.append(f"{value:,.0f} parameters")
        subtitle = f"reference point ({', '.join(coordinates)})"
        if normalised:
            accurate = "subnets at least 80 % accurate" if ref[0] < 1 else "any subnet"
            box = f"{accurate} and no costlier than E_ref"
            subtitle += f": the box of {box}, as in benchmarks/bench_search.py; share of that box covered"
    fig = go.Figure(go.Scatter(
        x=history["n_trials"], y=history["hypervolume"], mode="lines+markers", line={"shape": "hv"},
        marker={"size": 5}, name="hypervolume", customdata=history["number"],
        hovertemplate="after %{x} trials (trial %{customdata})<br>hypervolume %{y:.4g}<extra></extra>",
    ))
    fig.update_layout(
        template=_TEMPLATE, height=400, title=_title(title, subtitle), showlegend=False,
        xaxis={"title": {"text": "complete trials"}, "rangemode": "tozero"},
        yaxis={"title": {"text": HYPERVOLUME_SHARE_LABEL if normalised else _HYPERVOLUME_LABELS[len(columns)]},
               "tickformat": _ENERGY_FORMAT, "rangemode": "tozero"},
        margin={"t": 100},
    )
    return fig


def use_notebook_renderers() -> str:
    """Make figures displayed in a notebook render in a live Jupyter and in static copies.

    Each figure is displayed as plotly's JSON (drawn by JupyterLab) and as HTML with
    plotly.js inlined once per notebook (drawn wherever HTML runs its scripts: nbconvert's
    HTML export, VS Code, a notebook viewer that keeps outputs); where Kaleido and a
    Chrome it can drive are installed, also as a PNG image (GitHub shows only images).

    Returns:
        The renderer set as `plotly.io.renderers.default`.
    """
    import plotly.io as pio

    renderer = "plotly_mimetype+notebook"
    try:
        pio.to_image(go.Figure(), format="png", width=10, height=10)
    except Exception:  # no kaleido, or no browser for it: the HTML copy must do
        pass
    else:
        renderer += "+png"
    pio.renderers.default = renderer
    return renderer














