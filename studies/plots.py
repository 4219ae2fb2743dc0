"""Plotly figures of a study, and a self-contained HTML report that gathers them.

Every figure takes a frame from `studies.analysis` and returns a `plotly.graph_objects.Figure`,
so the notebook shows exactly what the report holds. Accuracy is plotted in percent and
energy in mJ per image; the axes say so.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go

from models import BLOCK_GENES, GLOBAL_GENES
from nas import atomic_write

from . import analysis
from .errors import StudyError
from .settings import StudySettings
from .study import measure_trial, select_trial, trials_frame

PARETO_TITLE = "Pareto front: accuracy vs energy"
HYPERVOLUME_TITLE = "Hypervolume of the feasible front"
BREAKDOWN_TITLE = "Energy per layer"
GENES_TITLE = "Genes of every trial"

ACCURACY_LABEL = "validation accuracy (%)"
ENERGY_LABEL = "energy per image (mJ)"
HYPERVOLUME_LABEL = "hypervolume ((1 − accuracy) × mJ)"

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


def _points(rows: pd.DataFrame, name: str, marker: dict[str, Any], mode: str = "markers",
            line: dict[str, Any] | None = None) -> go.Scatter:
    """A trace of trials: energy on x, accuracy (%) on y, trial and genes on hover."""
    custom = [[int(row["number"]), row["f_aeb"], analysis.architecture_text(row, "<br>")]
              for _, row in rows.iterrows()]
    return go.Scatter(
        x=rows["energy_mj"], y=100 * rows["accuracy"], mode=mode, name=name, marker=marker, line=line,
        customdata=custom,
        hovertemplate=("<b>trial %{customdata[0]}</b><br>accuracy %{y:.2f} %<br>energy %{x:.4g} mJ<br>"
                       "F_AEB %{customdata[1]:.4f}<br>%{customdata[2]}<extra>%{fullData.name}</extra>"),
    )


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
    front = analysis.pareto_front(rows)
    feasible = rows["feasible"].astype(bool)
    fig = go.Figure()
    dominated = rows[feasible & ~rows["number"].isin(front["number"])]
    fig.add_trace(_points(dominated, "dominated trials", {"color": _DOMINATED, "size": 8, "opacity": 0.35}))
    if not feasible.all():
        fig.add_trace(_points(rows[~feasible], "over budget (infeasible)",
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
        history: From `analysis.hypervolume_history` (its ``attrs["ref_point"]`` is shown).
        title: Figure title.
    """
    if history.empty:
        return _empty(title, "no complete trials yet")
    ref = history.attrs.get("ref_point")
    subtitle = (f"points (1 − accuracy, energy mJ), reference point ({ref[0]:.3g}, {ref[1]:.3g} mJ)"
                if ref else None)
    fig = go.Figure(go.Scatter(
        x=history["n_trials"], y=history["hypervolume"], mode="lines+markers", line={"shape": "hv"},
        marker={"size": 5}, name="hypervolume", customdata=history["number"],
        hovertemplate="after %{x} trials (trial %{customdata})<br>hypervolume %{y:.4g}<extra></extra>",
    ))
    fig.update_layout(
        template=_TEMPLATE, height=400, title=_title(title, subtitle), showlegend=False,
        xaxis={"title": {"text": "complete trials"}, "rangemode": "tozero"},
        yaxis={"title": {"text": HYPERVOLUME_LABEL}, "tickformat": _ENERGY_FORMAT, "rangemode": "tozero"},
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

_OBJECTIVES = {"pareto": "two objectives: maximise accuracy, minimise energy",
               "aeb": "one objective: maximise F_AEB"}


def _front_html(front: pd.DataFrame) -> str:
    if front.empty:
        return "<p>No feasible complete trial yet.</p>"
    table = analysis.front_table(front)
    formats = {"accuracy %": "{:.2f}".format, "energy mJ": "{:.4g}".format, "F_AEB": "{:.4f}".format,
               "params": "{:,}".format, "SOPs": "{:.3g}".format}
    return table.to_html(index=False, border=0, classes="front", formatters=formats, escape=True)


def _trial_line(row: pd.Series) -> str:
    return (f"trial {int(row['number'])}: {100 * row['accuracy']:.2f} %, {row['energy_mj']:.4g} mJ, "
            f"F_AEB {row['f_aeb']:.4f}")


def _summary(study: optuna.Study, settings: StudySettings, frame: pd.DataFrame, front: pd.DataFrame) -> str:
    aeb, space = settings.aeb, settings.space
    total = len(study.get_trials(deepcopy=False))
    infeasible = int((~frame["feasible"]).sum())
    items = [
        ("Study", study.study_name),
        ("Objective", f"{settings.objective} ({_OBJECTIVES.get(settings.objective, '')})"),
        ("Data set", f"{settings.dataset.name} (trials scored on the validation split)"),
        ("Search space", space.name + (f": {space.description}" if space.description else "")),
        ("F_AEB", f"Acc × (E / E_ref)^w, E_ref = {aeb.e_ref:.4g} mJ, alpha = {aeb.alpha}, beta = {aeb.beta}"),
        ("Trials", f"{len(frame)} complete of {total}; {len(front)} on the Pareto front"
                   + (f"; {infeasible} over budget" if infeasible else "")),
    ]
    if not front.empty:
        items.append(("Best F_AEB", _trial_line(analysis.best_aeb(frame))))
        items.append(("Knee of the front", _trial_line(analysis.knee(front))))
    items += [("Energy profile", settings.evaluation.profile), ("Supernet", settings.checkpoint)]
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
    """Write one self-contained HTML file: summary, front table and four figures.

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
    front = analysis.pareto_front(frame)
    chosen = select_trial(study, settings, "best" if breakdown_trial is None else breakdown_trial, frame=frame)
    score = measure_trial(settings, chosen, device=device)
    why = "the F_AEB-best trial" if breakdown_trial is None else "the chosen trial"
    breakdown_title = (f"{BREAKDOWN_TITLE} of trial {chosen.number} ({why}; validation "
                       f"accuracy {100 * score.accuracy:.2f} %)")
    sections = [
        ("Pareto front", pareto_figure(frame)),
        ("Search progress", hypervolume_figure(analysis.hypervolume_history(frame))),
        (f"Energy breakdown of trial {chosen.number}", energy_breakdown_figure(score.energy.layers, breakdown_title)),
        ("Genes", genes_parallel_figure(frame)),
    ]
    figures = []
    for i, (heading, fig) in enumerate(sections):
        div = fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False},
                          default_width="100%")
        figures.append(f"<h2>{html.escape(heading)}</h2>\n{div}")
        if i == 0:
            figures.append(f"<h2>Trials on the Pareto front</h2>\n{_front_html(front)}")
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
