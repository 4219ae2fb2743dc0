"""What every figure shares: titles, axis labels, colours, axes and the hover text of trials."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from .. import analysis, formatting

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

HYPERVOLUME_LABELS = {2: HYPERVOLUME_LABEL, 3: HYPERVOLUME3_LABEL}
# The pairs of the projections figure: (x, y) columns, accuracy on y as in the 2-D figure.
PROJECTIONS = (("energy_mj", "accuracy"), ("params", "accuracy"), ("energy_mj", "params"))

ENERGY_FORMAT = ".3~g"
TEMPLATE = "plotly_white"
FRONT_COLOUR = "#d62728"
DOMINATED_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#2ca02c"
KIND_COLOURS = {"MAC": "#ff7f0e", "AC": "#1f77b4", "NEURON": "#9467bd"}
KIND_NAMES = {"MAC": "MAC (real-valued input)", "AC": "AC (spike-driven)",
               "NEURON": "neuron updates and spikes routed"}
MODELS_TITLE = "The front under two energy models"
BOTH_COLOUR, ONLY_COLOUR = "#2ca02c", "#d62728"

Unit = tuple[str, float]


def energy_label(unit: Unit) -> str:
    """The title of an energy axis in `unit`, e.g. ``energy per image (nJ)``."""
    return ENERGY_LABEL.format(unit=unit[0])


def figure_title(text: str, subtitle: str | None = None) -> dict[str, Any]:
    title: dict[str, Any] = {"text": text, "x": 0.0, "xanchor": "left"}
    if subtitle:
        title["subtitle"] = {"text": subtitle}
    return title


def empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"template": TEMPLATE, "title": figure_title(title)})
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def axis_values(rows: pd.DataFrame, column: str, unit: Unit) -> pd.Series:
    if column == "accuracy":
        return 100 * rows[column]
    return unit[1] * rows[column] if column == "energy_mj" else rows[column]


def axis_layout(column: str, unit: Unit) -> dict[str, Any]:
    """Layout of an axis that shows `column`."""
    if column == "energy_mj":
        return {"title": {"text": energy_label(unit)}, "tickformat": ENERGY_FORMAT}
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


def versus_text(row: pd.Series) -> str:
    """A trial against the baseline and the ANN, for its hover text."""
    parts = []
    if pd.notna(row.get("accuracy_vs_baseline")):
        parts.append(f"vs baseline: {100 * row['accuracy_vs_baseline']:+.2f} pp accuracy, "
                     f"{row['energy_vs_baseline']:.3g} × energy")
    if pd.notna(row.get("energy_vs_ann")):
        parts.append(f"vs the same ANN: {row['energy_vs_ann']:.3g} × energy")
    return "<br>".join(parts)


def trial_points(rows: pd.DataFrame, name: str, marker: dict[str, Any], unit: Unit, mode: str = "markers",
            line: dict[str, Any] | None = None,
            axes: tuple[str, ...] = ("energy_mj", "accuracy"), **trace: Any) -> go.Scatter | go.Scatter3d:
    """A trace of trials on the given axes (two: a plane, three: a 3-D scatter), with the
    trial, its results, how it compares with the baseline and the ANN, and its genes on hover."""
    custom = [[int(row["number"]), row["f_aeb"], formatting.architecture_text(row, "<br>"), 100 * row["accuracy"],
               unit[1] * row["energy_mj"], row.get("params"), versus_text(row)] for _, row in rows.iterrows()]
    coordinates = dict(zip("xyz", (axis_values(rows, column, unit) for column in axes)))
    kind = go.Scatter3d if len(axes) == 3 else go.Scatter
    return kind(
        **coordinates, mode=mode, name=name, marker=marker, line=line, customdata=custom,
        hovertemplate=("<b>trial %{customdata[0]}</b><br>accuracy %{customdata[3]:.2f} %<br>"
                       f"energy %{{customdata[4]:.4g}} {unit[0]}<br>parameters %{{customdata[5]:,}}<br>"
                       "F_AEB %{customdata[1]:.4f}<br>%{customdata[6]}<br>%{customdata[2]}"
                       "<extra>%{fullData.name}</extra>"),
        **trace,
    )


def baseline_name(base: pd.Series) -> str:
    return f"baseline: largest subnet (trial {int(base['number'])})"


def baseline_text(base: pd.Series | None, unit: Unit) -> str:
    if base is None:
        return "baseline (largest subnet) not evaluated yet"
    return (f"baseline trial {int(base['number'])} (largest subnet): {100 * base['accuracy']:.2f} %, "
            f"{formatting.format_energy(base['energy_mj'], unit)}")


def split_front(rows: pd.DataFrame, objective: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The front of `rows`, its dominated feasible rows and its infeasible rows."""
    front = analysis.pareto_front(rows, objective=objective)
    feasible = rows["feasible"].astype(bool)
    return front, rows[feasible & ~rows["number"].isin(front["number"])], rows[~feasible]
