"""Plotly figures of a study, and a self-contained HTML report that gathers them.

Every figure takes a frame from `studies.analysis` and returns a `plotly.graph_objects.Figure`,
so the notebook shows exactly what the report holds. Accuracy is plotted in percent and
energy in mJ per image; the axes say so. `front_figures` picks the front figures of a kind
of study: the accuracy-energy plane for ``aeb`` and ``pareto``; for ``pareto3`` a 3-D
scatter of accuracy, energy and parameters, and its three pairwise projections.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from models import BLOCK_GENES, GLOBAL_GENES
from nas import atomic_write
from nas.settings import OBJECTIVE_DESCRIPTIONS

from . import analysis
from .errors import StudyError
from .settings import StudySettings
from .study import measure_trial, select_trial, trials_frame

PARETO_TITLE = "Pareto front: accuracy vs energy"
PARETO3_TITLE = "Pareto front in 3-D: accuracy, energy and parameters"
PROJECTIONS_TITLE = "The 3-D Pareto front seen two objectives at a time"
HYPERVOLUME_TITLE = "Hypervolume of the feasible front"
BREAKDOWN_TITLE = "Energy per layer"
GENES_TITLE = "Genes of every trial"

ACCURACY_LABEL = "validation accuracy (%)"
ENERGY_LABEL = "energy per image (mJ)"
_FIRST_LAYER_TEXT = {
    "once": "once per image (as computed)",
    "per_step": "at every time step (as the published Spikformer tables)",
}
PARAMS_LABEL = "parameters"
HYPERVOLUME_LABEL = "hypervolume ((1 − accuracy) × mJ)"
HYPERVOLUME3_LABEL = "hypervolume ((1 − accuracy) × mJ × parameters)"

_AXIS_LABELS = {"accuracy": ACCURACY_LABEL, "energy_mj": ENERGY_LABEL, "params": PARAMS_LABEL}
_HYPERVOLUME_LABELS = {2: HYPERVOLUME_LABEL, 3: HYPERVOLUME3_LABEL}
# The pairs of the projections figure: (x, y) columns, accuracy on y as in the 2-D figure.
_PROJECTIONS = (("energy_mj", "accuracy"), ("params", "accuracy"), ("energy_mj", "params"))

# Energies span many orders of magnitude across data sets (nJ on digits, mJ on ImageNet);
# plain significant digits read better than SI prefixes next to a "mJ" label.
_ENERGY_FORMAT = ".3~g"
_TEMPLATE = "plotly_white"
_FRONT = "#d62728"
_DOMINATED = "#1f77b4"
_KIND_COLOURS = {"MAC": "#ff7f0e", "AC": "#1f77b4"}
_KIND_NAMES = {"MAC": "MAC (real-valued input)", "AC": "AC (spike-driven)"}


def _title(text: str, subtitle: str | None = None) -> dict[str, Any]:
    title: dict[str, Any] = {"text": text, "x": 0.0, "xanchor": "left"}
    if subtitle:
        title["subtitle"] = {"text": subtitle}
    return title


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"template": _TEMPLATE, "title": _title(title)})
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def _axis_values(rows: pd.DataFrame, column: str) -> pd.Series:
    return 100 * rows[column] if column == "accuracy" else rows[column]


def _axis(column: str) -> dict[str, Any]:
    """Layout of an axis that shows `column`."""
    layout: dict[str, Any] = {"title": {"text": _AXIS_LABELS[column]}}
    if column == "energy_mj":
        layout["tickformat"] = _ENERGY_FORMAT
    return layout


def _points(rows: pd.DataFrame, name: str, marker: dict[str, Any], mode: str = "markers",
            line: dict[str, Any] | None = None,
            axes: tuple[str, ...] = ("energy_mj", "accuracy"), **trace: Any) -> go.Scatter | go.Scatter3d:
    """A trace of trials on the given axes (two: a plane, three: a 3-D scatter), with the
    trial, its results and its genes on hover."""
    custom = [[int(row["number"]), row["f_aeb"], analysis.architecture_text(row, "<br>"), 100 * row["accuracy"],
               row["energy_mj"], row.get("params")] for _, row in rows.iterrows()]
    coordinates = dict(zip("xyz", (_axis_values(rows, column) for column in axes)))
    kind = go.Scatter3d if len(axes) == 3 else go.Scatter
    return kind(
        **coordinates, mode=mode, name=name, marker=marker, line=line, customdata=custom,
        hovertemplate=("<b>trial %{customdata[0]}</b><br>accuracy %{customdata[3]:.2f} %<br>"
                       "energy %{customdata[4]:.4g} mJ<br>parameters %{customdata[5]:,}<br>"
                       "F_AEB %{customdata[1]:.4f}<br>%{customdata[2]}<extra>%{fullData.name}</extra>"),
        **trace,
    )


def _split(rows: pd.DataFrame, objective: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The front of `rows`, its dominated feasible rows and its infeasible rows."""
    front = analysis.pareto_front(rows, objective=objective)
    feasible = rows["feasible"].astype(bool)
    return front, rows[feasible & ~rows["number"].isin(front["number"])], rows[~feasible]


def pareto_figure(frame: pd.DataFrame, *, title: str = PARETO_TITLE) -> go.Figure:
    """Every complete trial in the accuracy-energy plane, the front highlighted.

    Dominated trials are faded, over-budget trials drawn as crosses, the front joined by a
    line, the F_AEB-best trial marked by a star and the knee of the front by a diamond.

    Args:
        frame: From `analysis.trials_frame`.
        title: Figure title.
    """
    rows = frame.dropna(subset=["accuracy", "energy_mj"])
    if rows.empty:
        return _empty(title, "no complete trials yet")
    front, dominated, infeasible = _split(rows, "pareto")
    fig = go.Figure()
    fig.add_trace(_points(dominated, "dominated trials", {"color": _DOMINATED, "size": 8, "opacity": 0.35}))
    if not infeasible.empty:
        fig.add_trace(_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 8, "symbol": "x", "opacity": 0.6}))
    if not front.empty:
        fig.add_trace(_points(front, f"Pareto front ({len(front)} trials)",
                              {"color": _FRONT, "size": 10, "line": {"color": "white", "width": 1}},
                              mode="lines+markers", line={"color": _FRONT, "width": 2, "shape": "hv"}))
        best = analysis.best_aeb(rows)
        fig.add_trace(_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 20, "symbol": "star",
                               "line": {"color": "black", "width": 1.5}}))
        knee = analysis.knee(front)
        fig.add_trace(_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 28, "symbol": "diamond-open", "line": {"width": 2}}))
    fig.update_layout(
        template=_TEMPLATE, height=560,
        title=_title(title, f"{len(rows)} complete trials; hover a point for its architecture"),
        xaxis={"title": {"text": ENERGY_LABEL}, "tickformat": _ENERGY_FORMAT},
        yaxis={"title": {"text": ACCURACY_LABEL}},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        hoverlabel={"align": "left"},
    )
    return fig


def pareto3d_figure(frame: pd.DataFrame, *, title: str = PARETO3_TITLE) -> go.Figure:
    """Every complete trial in (energy, parameters, accuracy) space, the 3-D front highlighted.

    Dominated trials are faded, over-budget trials drawn as crosses, the F_AEB-best trial
    marked by a gold square and the knee of the front (`analysis.knee`) by a diamond.

    Args:
        frame: From `analysis.trials_frame` of a ``pareto3`` study (any study's frame works).
        title: Figure title.
    """
    rows = frame.dropna(subset=analysis.front_columns("pareto3"))
    if rows.empty:
        return _empty(title, "no complete trials yet")
    axes = ("energy_mj", "params", "accuracy")
    front, dominated, infeasible = _split(rows, "pareto3")
    fig = go.Figure()
    fig.add_trace(_points(dominated, "dominated trials", {"color": _DOMINATED, "size": 4, "opacity": 0.4}, axes=axes))
    if not infeasible.empty:
        fig.add_trace(_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 4, "symbol": "x", "opacity": 0.6}, axes=axes))
    if not front.empty:
        fig.add_trace(_points(front, f"Pareto front ({len(front)} trials)", {"color": _FRONT, "size": 6}, axes=axes))
        best = analysis.best_aeb(rows)
        fig.add_trace(_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 9, "symbol": "square", "line": {"color": "black", "width": 1}},
                              axes=axes))
        knee = analysis.knee(front, objective="pareto3")
        fig.add_trace(_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 12, "symbol": "diamond-open"}, axes=axes))
    fig.update_layout(
        template=_TEMPLATE, height=680,
        title=_title(title, f"{len(rows)} complete trials; drag to turn, hover a point for its architecture"),
        scene={"xaxis": _axis("energy_mj"), "yaxis": _axis("params"), "zaxis": _axis("accuracy")},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        hoverlabel={"align": "left"}, margin={"t": 100},
    )
    return fig


def projections_figure(frame: pd.DataFrame, *, title: str = PROJECTIONS_TITLE) -> go.Figure:
    """The trials of a ``pareto3`` study in each plane of two objectives, the 3-D front highlighted.

    A point of the 3-D front may look dominated in a plane: it is better in the third
    objective. The knee of the 3-D front is marked in every plane.

    Args:
        frame: From `analysis.trials_frame` of a ``pareto3`` study (any study's frame works).
        title: Figure title.
    """
    rows = frame.dropna(subset=analysis.front_columns("pareto3"))
    if rows.empty:
        return _empty(title, "no complete trials yet")
    front, dominated, infeasible = _split(rows, "pareto3")
    names = {"energy_mj": "energy", "params": "parameters", "accuracy": "accuracy"}
    fig = make_subplots(rows=1, cols=len(_PROJECTIONS), horizontal_spacing=0.08,
                        subplot_titles=[f"{names[y]} vs {names[x]}" for x, y in _PROJECTIONS])
    knee = analysis.knee(front, objective="pareto3").to_frame().T if not front.empty else front
    groups = [
        (dominated, "dominated trials", {"color": _DOMINATED, "size": 7, "opacity": 0.35}),
        (infeasible, "over budget (infeasible)", {"color": "#7f7f7f", "size": 7, "symbol": "x", "opacity": 0.6}),
        (front, f"3-D Pareto front ({len(front)} trials)",
         {"color": _FRONT, "size": 9, "line": {"color": "white", "width": 1}}),
        (knee, "knee of the 3-D front", {"color": "black", "size": 22, "symbol": "diamond-open", "line": {"width": 2}}),
    ]
    for col, axes in enumerate(_PROJECTIONS, start=1):
        for rows_of, name, marker in groups:
            if rows_of.empty:
                continue
            # One legend entry per group: the three planes show the same trials.
            fig.add_trace(_points(rows_of, name, marker, axes=axes, legendgroup=name, showlegend=col == 1),
                          row=1, col=col)
        fig.update_xaxes(_axis(axes[0]), row=1, col=col)
        fig.update_yaxes(_axis(axes[1]), row=1, col=col)
    fig.update_layout(
        template=_TEMPLATE, height=480,
        title=_title(title, "red: trials no other trial beats on all three of accuracy, energy and parameters"),
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
        hoverlabel={"align": "left"}, margin={"t": 120},
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
    """Energy per synaptic layer (mJ per image), coloured by how it is charged.

    Args:
        layers: `energy.EnergyReport.layers` (layer, kind, dense_macs, input_rate, ops,
            energy_mj, energy_share), in forward order.
        title: Figure title.
    """
    if layers.empty:
        return _empty(title, "no layers were measured")
    fig = go.Figure()
    for kind in ("MAC", "AC"):
        rows = layers[layers["kind"] == kind]
        if rows.empty:
            continue
        fig.add_trace(go.Bar(
            x=rows["energy_mj"], y=rows["layer"], orientation="h", name=_KIND_NAMES[kind],
            marker_color=_KIND_COLOURS[kind],
            customdata=list(zip(rows["ops"], rows["input_rate"], 100 * rows["energy_share"])),
            hovertemplate=("<b>%{y}</b><br>energy %{x:.4g} mJ (%{customdata[2]:.1f} %)<br>"
                           "operations %{customdata[0]:.4g}<br>input spike rate %{customdata[1]:.3f}"
                           "<extra>%{fullData.name}</extra>"),
        ))
    total = float(layers["energy_mj"].sum())
    mac_share = float(layers.loc[layers["kind"] == "MAC", "energy_share"].sum())
    fig.update_layout(
        template=_TEMPLATE, height=170 + 20 * len(layers), barmode="overlay",
        title=_title(title, f"total {total:.4g} mJ per image; {100 * mac_share:.1f} % in MAC layers"),
        xaxis={"title": {"text": ENERGY_LABEL}, "tickformat": _ENERGY_FORMAT},
        yaxis={"title": {"text": "layer (forward order)"}, "categoryorder": "array",
               "categoryarray": list(layers["layer"]), "autorange": "reversed", "automargin": True},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        margin={"t": 110},
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
    dimensions.append({"label": "accuracy (%)", "values": 100 * rows["accuracy"], "tickformat": ".1f"})
    dimensions.append({"label": "energy (mJ)", "values": rows["energy_mj"], "tickformat": _ENERGY_FORMAT})
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
        history: From `analysis.hypervolume_history` (its ``attrs["ref_point"]`` is shown,
            and its ``attrs["columns"]`` say whether the volume is 2-D or 3-D).
        title: Figure title.
    """
    if history.empty:
        return _empty(title, "no complete trials yet")
    columns = history.attrs.get("columns", ("accuracy", "energy_mj"))
    ref = history.attrs.get("ref_point")
    subtitle = None
    if ref:
        units = {"accuracy": ("1 − accuracy", ""), "energy_mj": ("energy mJ", " mJ"), "params": ("parameters", "")}
        points = ", ".join(units[c][0] for c in columns)
        values = ", ".join(f"{v:.3g}{units[c][1]}" for c, v in zip(columns, ref))
        subtitle = f"points ({points}), reference point ({values})"
    fig = go.Figure(go.Scatter(
        x=history["n_trials"], y=history["hypervolume"], mode="lines+markers", line={"shape": "hv"},
        marker={"size": 5}, name="hypervolume", customdata=history["number"],
        hovertemplate="after %{x} trials (trial %{customdata})<br>hypervolume %{y:.4g}<extra></extra>",
    ))
    fig.update_layout(
        template=_TEMPLATE, height=400, title=_title(title, subtitle), showlegend=False,
        xaxis={"title": {"text": "complete trials"}, "rangemode": "tozero"},
        yaxis={"title": {"text": _HYPERVOLUME_LABELS[len(columns)]}, "tickformat": _ENERGY_FORMAT,
               "rangemode": "tozero"},
    )
    return fig


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1200px; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.25rem; }
p.lead { color: #555; margin-top: 0; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1.2rem; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
table.front { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
table.front th, table.front td { padding: 0.3rem 0.7rem; text-align: right; border-bottom: 1px solid #e6e6e6; }
table.front th { background: #f3f3f3; }
table.front tr:nth-child(even) td { background: #fafafa; }
"""


def _front_html(front: pd.DataFrame) -> str:
    if front.empty:
        return "<p>No feasible complete trial yet.</p>"
    table = analysis.front_table(front)
    formats = {"accuracy %": "{:.2f}".format, "energy mJ": "{:.4g}".format, "F_AEB": "{:.4f}".format,
               "params": "{:,}".format, "SOPs": "{:.3g}".format}
    return table.to_html(index=False, border=0, classes="front", formatters=formats, escape=True)


def _front_name(objective: str) -> str:
    return "3-D Pareto front" if len(analysis.front_columns(objective)) == 3 else "Pareto front"


def _trial_line(row: pd.Series) -> str:
    return (f"trial {int(row['number'])}: {100 * row['accuracy']:.2f} %, {row['energy_mj']:.4g} mJ, "
            f"{int(row['params']):,} parameters, F_AEB {row['f_aeb']:.4f}")


def _summary(study: optuna.Study, settings: StudySettings, frame: pd.DataFrame, front: pd.DataFrame) -> str:
    aeb, space = settings.aeb, settings.space
    total = len(study.get_trials(deepcopy=False))
    infeasible = int((~frame["feasible"]).sum())
    items = [
        ("Study", study.study_name),
        ("Objective", f"{settings.objective} ({OBJECTIVE_DESCRIPTIONS[settings.objective]})"),
        ("Data set", f"{settings.dataset.name} (trials scored on the validation split)"),
        ("Search space", space.name + (f": {space.description}" if space.description else "")),
        ("F_AEB", f"Acc × (E / E_ref)^w, E_ref = {aeb.e_ref:.4g} mJ, alpha = {aeb.alpha}, beta = {aeb.beta}"),
        ("Trials", f"{len(frame)} complete of {total}; {len(front)} on the {_front_name(settings.objective)}"
                   + (f"; {infeasible} over budget" if infeasible else "")),
    ]
    if not front.empty:
        items.append(("Best F_AEB", _trial_line(analysis.best_aeb(frame))))
        items.append(("Knee of the front", _trial_line(analysis.knee(front, objective=settings.objective))))
    items += [("Energy profile", settings.evaluation.profile),
              ("First layer", _FIRST_LAYER_TEXT[settings.evaluation.first_layer]), ("Supernet", settings.checkpoint)]
    rows = "".join(f"<dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd>" for key, value in items)
    return f'<dl class="summary">{rows}</dl>'


def write_report(
    study: optuna.Study,
    settings: StudySettings,
    path: str | Path,
    *,
    breakdown_trial: int | None = None,
    device: str | None = None,
) -> Path:
    """Write one self-contained HTML file: summary, front table and the figures.

    The figures: the front (`front_figures`: one for a 2-D study, the 3-D scatter and its
    projections for ``pareto3``), the hypervolume history, the energy breakdown of one trial
    and the genes of every trial.

    The energy breakdown is measured, not read from storage: the trial's subnet is
    evaluated again on the validation split (BN recalibrated as in the search), so the
    report needs the study's supernet checkpoint and data set. plotly.js is inlined once;
    the file opens offline. It is written atomically (temporary file, then rename).

    Args:
        study: An autospk study.
        settings: Its stored settings (`studies.study.load`).
        path: Where to write the report.
        breakdown_trial: Trial of the energy breakdown (default: the F_AEB-best trial).
        device: Where to measure (default: cuda if available, else cpu).

    Returns:
        The report's path.

    Raises:
        StudyError: for a study without complete trials, or an unknown or incomplete trial.
    """
    path = Path(path)
    frame = trials_frame(study, settings)
    if frame.empty:
        raise StudyError(f"study '{study.study_name}' has no complete trials yet; run `autospk-study optimize` first")
    front = analysis.pareto_front(frame, objective=settings.objective)
    chosen = select_trial(study, settings, "best" if breakdown_trial is None else breakdown_trial, frame=frame)
    score = measure_trial(settings, chosen, device=device)
    why = "the F_AEB-best trial" if breakdown_trial is None else "the chosen trial"
    breakdown_title = (f"{BREAKDOWN_TITLE} of trial {chosen.number} ({why}; validation "
                       f"accuracy {100 * score.accuracy:.2f} %)")
    front_sections = front_figures(frame, settings.objective)
    sections = [
        *front_sections,
        ("Search progress", hypervolume_figure(analysis.hypervolume_history(frame, objective=settings.objective))),
        (f"Energy breakdown of trial {chosen.number}", energy_breakdown_figure(score.energy.layers, breakdown_title)),
        ("Genes", genes_parallel_figure(frame)),
    ]
    figures = []
    for i, (heading, fig) in enumerate(sections):
        div = fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False},
                          default_width="100%")
        figures.append(f"<h2>{html.escape(heading)}</h2>\n{div}")
        if i == len(front_sections) - 1:
            figures.append(f"<h2>Trials on the {_front_name(settings.objective)}</h2>\n{_front_html(front)}")
    name = html.escape(study.study_name)
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>autospk: {name}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>autospk study “{name}”</h1>\n"
        f'<p class="lead">Architecture search for spiking vision transformers: accuracy and energy '
        f"of the subnets evaluated with inherited supernet weights.</p>\n"
        f"{_summary(study, settings, frame, front)}\n" + "\n".join(figures) + "\n</body>\n</html>\n"
    )
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
