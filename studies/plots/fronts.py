"""The front figures: the accuracy-energy plane, the 3-D front and its projections, and the
front under two energy models."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import analysis, formatting
from .style import (
    ACCURACY_LABEL,
    BASELINE_COLOUR,
    BOTH_COLOUR,
    DOMINATED_COLOUR,
    ENERGY_FORMAT,
    FRONT_COLOUR,
    MODELS_TITLE,
    ONLY_COLOUR,
    PARETO3_TITLE,
    PARETO_TITLE,
    PROJECTIONS,
    PROJECTIONS_TITLE,
    TEMPLATE,
    axis_layout,
    baseline_name,
    baseline_text,
    empty_figure,
    figure_title,
    log_scale_menu,
    split_front,
    trial_points,
)


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
        return empty_figure(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    front, dominated, infeasible = split_front(rows, "pareto")
    fig = go.Figure()
    dominated_marker = {"color": DOMINATED_COLOUR, "size": 8, "opacity": 0.35}
    fig.add_trace(trial_points(dominated, "dominated trials", dominated_marker, unit))
    if not infeasible.empty:
        fig.add_trace(trial_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 8, "symbol": "x", "opacity": 0.6}, unit))
    if not front.empty:
        fig.add_trace(trial_points(front, f"Pareto front ({len(front)} trials)",
                              {"color": FRONT_COLOUR, "size": 10, "line": {"color": "white", "width": 1}}, unit,
                              mode="lines+markers", line={"color": FRONT_COLOUR, "width": 2, "shape": "hv"}))
        best = analysis.best_aeb(rows)
        fig.add_trace(trial_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 20, "symbol": "star",
                               "line": {"color": "black", "width": 1.5}}, unit))
        knee = analysis.knee(front)
        fig.add_trace(trial_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 28, "symbol": "diamond-open", "line": {"width": 2}}, unit))
    base = analysis.baseline(rows)
    if base is not None:
        base_marker = {"color": BASELINE_COLOUR, "size": 18, "symbol": "square-open", "line": {"width": 3}}
        fig.add_trace(trial_points(base.to_frame().T, baseline_name(base), base_marker, unit))
    fig.update_layout(
        template=TEMPLATE, height=560,
        title=figure_title(title, f"{len(rows)} complete trials; {baseline_text(base, unit)}; hover a point for its "
                            "architecture"),
        xaxis=axis_layout("energy_mj", unit), yaxis=axis_layout("accuracy", unit),
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
        return empty_figure(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    axes = ("energy_mj", "params", "accuracy")
    front, dominated, infeasible = split_front(rows, "pareto3")
    fig = go.Figure()
    fig.add_trace(trial_points(dominated, "dominated trials", {"color": DOMINATED_COLOUR, "size": 4, "opacity": 0.4},
                               unit, axes=axes))
    if not infeasible.empty:
        fig.add_trace(trial_points(infeasible, "over budget (infeasible)",
                              {"color": "#7f7f7f", "size": 4, "symbol": "x", "opacity": 0.6}, unit, axes=axes))
    if not front.empty:
        fig.add_trace(trial_points(front, f"Pareto front ({len(front)} trials)", {"color": FRONT_COLOUR, "size": 6},
                                   unit, axes=axes))
        best = analysis.best_aeb(rows)
        fig.add_trace(trial_points(best.to_frame().T, f"best F_AEB (trial {int(best['number'])})",
                              {"color": "gold", "size": 9, "symbol": "square", "line": {"color": "black", "width": 1}},
                              unit, axes=axes))
        knee = analysis.knee(front, objective="pareto3")
        fig.add_trace(trial_points(knee.to_frame().T, f"knee of the front (trial {int(knee['number'])})",
                              {"color": "black", "size": 12, "symbol": "diamond-open"}, unit, axes=axes))
    base = analysis.baseline(rows)
    if base is not None:
        fig.add_trace(trial_points(base.to_frame().T, baseline_name(base),
                              {"color": BASELINE_COLOUR, "size": 12, "symbol": "square-open"}, unit, axes=axes))
    fig.update_layout(
        template=TEMPLATE, height=680,
        title=figure_title(title, f"{len(rows)} complete trials; {baseline_text(base, unit)}; drag to turn, hover a "
                            "point for its architecture"),
        scene={"xaxis": axis_layout("energy_mj", unit), "yaxis": axis_layout("params", unit),
               "zaxis": axis_layout("accuracy", unit)},
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
        return empty_figure(title, "no complete trials yet")
    unit = formatting.energy_unit(rows["energy_mj"])
    front, dominated, infeasible = split_front(rows, "pareto3")
    names = {"energy_mj": "energy", "params": "parameters", "accuracy": "accuracy"}
    fig = make_subplots(rows=1, cols=len(PROJECTIONS), horizontal_spacing=0.08,
                        subplot_titles=[f"{names[y]} vs {names[x]}" for x, y in PROJECTIONS])
    knee = analysis.knee(front, objective="pareto3").to_frame().T if not front.empty else front
    base = analysis.baseline(rows)
    groups = [
        (dominated, "dominated trials", {"color": DOMINATED_COLOUR, "size": 7, "opacity": 0.35}),
        (infeasible, "over budget (infeasible)", {"color": "#7f7f7f", "size": 7, "symbol": "x", "opacity": 0.6}),
        (front, f"3-D Pareto front ({len(front)} trials)",
         {"color": FRONT_COLOUR, "size": 9, "line": {"color": "white", "width": 1}}),
        (knee, "knee of the 3-D front", {"color": "black", "size": 22, "symbol": "diamond-open", "line": {"width": 2}}),
    ]
    if base is not None:
        groups.append((base.to_frame().T, baseline_name(base),
                       {"color": BASELINE_COLOUR, "size": 16, "symbol": "square-open", "line": {"width": 3}}))
    energy_axes = []
    for col, axes in enumerate(PROJECTIONS, start=1):
        for rows_of, name, marker in groups:
            if rows_of.empty:
                continue
            # One legend entry per group: the three planes show the same trials.
            fig.add_trace(trial_points(rows_of, name, marker, unit, axes=axes, legendgroup=name, showlegend=col == 1),
                          row=1, col=col)
        fig.update_xaxes(axis_layout(axes[0], unit), row=1, col=col)
        fig.update_yaxes(axis_layout(axes[1], unit), row=1, col=col)
        energy_axes += [f"{letter}axis{col if col > 1 else ''}" for letter, column in zip("xy", axes)
                        if column == "energy_mj"]
    fig.update_layout(
        template=TEMPLATE, height=480,
        title=figure_title(title, "red: trials no other trial beats on all three of accuracy, energy and parameters; "
                            + baseline_text(base, unit)),
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
        groups = (("all trials", rows, {"color": DOMINATED_COLOUR, "size": 7, "opacity": 0.3}),
                  (f"on both fronts ({len(both)})", rows[rows["number"].isin(both)],
                   {"color": BOTH_COLOUR, "size": 11, "line": {"color": "white", "width": 1}}),
                  ("on this model's front only", rows[rows["number"].isin(set(on["number"]) - both)],
                   {"color": ONLY_COLOUR, "size": 11, "symbol": "diamond", "line": {"color": "white", "width": 1}}))
        for name, part, marker in groups:
            fig.add_trace(go.Scatter(
                x=unit[1] * part[f"energy_mj_{model}"], y=100 * part["accuracy"], mode="markers", name=name,
                marker=marker, legendgroup=name, showlegend=col == 1,
                customdata=part["number"].astype(int),
                hovertemplate=f"<b>trial %{{customdata}}</b><br>accuracy %{{y:.2f}} %<br>energy %{{x:.4g}} {unit[0]}"
                              f" ({model})<extra>%{{fullData.name}}</extra>"), row=1, col=col)
        fig.update_xaxes(title_text=f"energy per image, {model} ({unit[0]})", tickformat=ENERGY_FORMAT, row=1,
                         col=col)
        fig.update_yaxes(title_text=ACCURACY_LABEL, row=1, col=col)
    fig.update_layout(
        template=TEMPLATE, height=520,
        title=figure_title(title, f"{stays} of the {int(changes[f'on_{first}'].sum())} trials on the {first} front "
                                  "stay on "
                            f"the {second} front; {int(changes[f'on_{second}'].sum())} trials on the {second} front"),
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0.0},
        margin={"t": 120},
    )
    return fig
