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

import plotly.graph_objects as go

from .details import energy_breakdown_figure, genes_parallel_figure, hypervolume_figure
from .fronts import energy_models_figure, front_figures, pareto3d_figure, pareto_figure, projections_figure
from .style import (
    ACCURACY_LABEL,
    BREAKDOWN_TITLE,
    ENERGY_LABEL,
    GENES_TITLE,
    HYPERVOLUME3_LABEL,
    HYPERVOLUME_LABEL,
    HYPERVOLUME_SHARE_LABEL,
    HYPERVOLUME_TITLE,
    MODELS_TITLE,
    PARAMS_LABEL,
    PARETO3_TITLE,
    PARETO_TITLE,
    PROJECTIONS_TITLE,
    Unit,
    energy_label,
    log_scale_menu,
)

__all__ = ["ACCURACY_LABEL", "BREAKDOWN_TITLE", "ENERGY_LABEL", "GENES_TITLE", "HYPERVOLUME3_LABEL",
           "HYPERVOLUME_LABEL", "HYPERVOLUME_SHARE_LABEL", "HYPERVOLUME_TITLE", "MODELS_TITLE", "PARAMS_LABEL",
           "PARETO3_TITLE", "PARETO_TITLE", "PROJECTIONS_TITLE", "Unit", "energy_breakdown_figure", "energy_label",
           "energy_models_figure", "front_figures", "genes_parallel_figure", "hypervolume_figure", "log_scale_menu",
           "pareto3d_figure", "pareto_figure", "projections_figure", "use_notebook_renderers"]


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
