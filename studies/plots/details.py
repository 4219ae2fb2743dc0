"""Figures of one trial or of the search: energy per layer, genes of every trial, hypervolume."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from models import BLOCK_GENES, GLOBAL_GENES

from .. import formatting
from .style import (
    BREAKDOWN_TITLE,
    ENERGY_FORMAT,
    GENES_TITLE,
    HYPERVOLUME_LABELS,
    HYPERVOLUME_SHARE_LABEL,
    HYPERVOLUME_TITLE,
    KIND_COLOURS,
    KIND_NAMES,
    TEMPLATE,
    axis_layout,
    empty_figure,
    figure_title,
    log_scale_menu,
)


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
        return empty_figure(title, "no layers were measured")
    unit = formatting.energy_unit(layers["energy_mj"])
    fig = go.Figure()
    for kind in ("MAC", "AC", "NEURON"):
        rows = layers[layers["kind"] == kind]
        if rows.empty:
            continue
        fig.add_trace(go.Bar(
            x=unit[1] * rows["energy_mj"], y=rows["layer"], orientation="h", name=KIND_NAMES[kind],
            marker_color=KIND_COLOURS[kind],
            customdata=list(zip(rows["ops"], rows["input_rate"], 100 * rows["energy_share"])),
            hovertemplate=(f"<b>%{{y}}</b><br>energy %{{x:.4g}} {unit[0]} (%{{customdata[2]:.1f}} %)<br>"
                           "operations %{customdata[0]:.4g}<br>input spike rate %{customdata[1]:.3f}"
                           "<extra>%{fullData.name}</extra>"),
        ))
    total = float(layers["energy_mj"].sum())
    mac_share = float(layers.loc[layers["kind"] == "MAC", "energy_share"].sum())
    fig.update_layout(
        template=TEMPLATE, height=190 + 20 * len(layers), barmode="overlay",
        title=figure_title(title, f"total {formatting.format_energy(total)} per image; "
                            f"{100 * mac_share:.1f} % in MAC layers"),
        xaxis=axis_layout("energy_mj", unit),
        yaxis={"title": {"text": "layer (forward order)"}, "categoryorder": "array",
               "categoryarray": list(layers["layer"]), "autorange": "reversed", "automargin": True},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0.0},
        margin={"t": 130}, updatemenus=[log_scale_menu(["xaxis"])],
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
        return empty_figure(title, "no complete trials yet")
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
                       "tickformat": ENERGY_FORMAT})
    fig = go.Figure(go.Parcoords(
        dimensions=dimensions,
        line={"color": rows["f_aeb"], "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": "F_AEB"}}},
        labelangle=0, labelside="bottom",
    ))
    fig.update_layout(
        template=TEMPLATE, height=480,
        title=figure_title(title, f"{len(rows)} evaluated architectures; per-block genes averaged over active "
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
        return empty_figure(title, "no complete trials yet")
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
        template=TEMPLATE, height=400, title=figure_title(title, subtitle), showlegend=False,
        xaxis={"title": {"text": "complete trials"}, "rangemode": "tozero"},
        yaxis={"title": {"text": HYPERVOLUME_SHARE_LABEL if normalised else HYPERVOLUME_LABELS[len(columns)]},
               "tickformat": ENERGY_FORMAT, "rangemode": "tozero"},
        margin={"t": 100},
    )
    return fig
