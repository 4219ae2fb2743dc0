"""The HTML report of a study: one self-contained page with a summary, the front's table and
the figures of `studies.plots`, filled into a template (`PAGE`).
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

import optuna
import pandas as pd

from nas import atomic_write
from nas.settings import OBJECTIVE_DESCRIPTIONS

from . import analysis, formatting
from .errors import StudyError
from .plots import (
    BREAKDOWN_TITLE,
    Unit,
    energy_breakdown_figure,
    energy_models_figure,
    front_figures,
    genes_parallel_figure,
    hypervolume_figure,
)
from .results import select_trial, study_hypervolume, trial_layers, trials_frame
from .settings import StudySettings

_FIRST_LAYER_TEXT = {
    "once": "once per image (as computed)",
    "per_step": "at every time step (as the published Spikformer tables)",
}


def _models_html(changes: pd.DataFrame, models: list[str], unit_of: dict[str, Unit]) -> str:
    """The table of `analysis.front_changes`: each trial on some front, its energy under each
    model, and a mark where it is on that model's front."""
    rows = []
    for _, row in changes.iterrows():
        cells = [f"<td>{int(row['number'])}</td><td>{100 * row['accuracy']:.2f}</td>"]
        for model in models:
            mark = " ●" if row[f"on_{model}"] else ""
            cells.append(f"<td>{formatting.format_energy(row[f'energy_mj_{model}'], unit_of[model])}{mark}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    return (f'<table class="front"><thead><tr><th>trial</th><th>accuracy (%)</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>\n<p>Every trial on the Pareto front under at least one "
            "recorded energy model; ● marks the fronts it is on. Energies per image, recorded when the trial ran "
            "(nothing is evaluated again).</p>")


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


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>autospk: $name</title>
<style>$css</style>
</head>
<body>
<h1>autospk study “$name”</h1>
<p class="lead">Architecture search for spiking vision transformers: accuracy and energy of the
subnets evaluated with inherited supernet weights.</p>
$summary
$sections
</body>
</html>
""")
"""The report's page: ``$name`` (the study's, escaped), ``$css``, ``$summary`` and ``$sections``
(headings, figures and tables, in order)."""


def _front_html(front: pd.DataFrame, frame: pd.DataFrame) -> str:
    if front.empty:
        return "<p>No feasible complete trial yet.</p>"
    table = formatting.front_table(analysis.with_baseline_row(front, frame), baseline_columns=True)
    text = table.to_html(index=False, border=0, classes="front", formatters=formatting.display_formats(table),
                         escape=True)
    return (text + "\n<p>acc - baseline pp: accuracy minus the baseline's, in percentage points; E / E_baseline: "
            "energy over the baseline's; E / E_ANN: energy over that of the same network run as an ANN "
            "(E_MAC × dense MACs). The baseline is the space's largest subnet; a last row shows it when it is "
            "not on the front.</p>")


def _front_name(objective: str) -> str:
    return "3-D Pareto front" if len(analysis.front_columns(objective)) == 3 else "Pareto front"


def _trial_line(row: pd.Series, unit: Unit) -> str:
    line = (f"trial {int(row['number'])}: {100 * row['accuracy']:.2f} %, "
            f"{formatting.format_energy(row['energy_mj'], unit)}, "
            f"{int(row['params']):,} parameters, F_AEB {row['f_aeb']:.4f}")
    versus = []
    if pd.notna(row.get("energy_vs_baseline")):
        versus.append(f"{100 * row['accuracy_vs_baseline']:+.2f} pp accuracy and {row['energy_vs_baseline']:.3g} × "
                      "the energy of the baseline")
    if pd.notna(row.get("energy_vs_ann")):
        versus.append(f"{row['energy_vs_ann']:.3g} × the energy of the same network as an ANN")
    return line + (f" ({'; '.join(versus)})" if versus else "")


def baseline_summary(frame: pd.DataFrame, settings: StudySettings) -> str:
    """One line on the study's baseline: its results, and its energy against the same ANN's."""
    base = analysis.baseline(frame)
    if base is None:
        return ("the largest subnet has not completed yet (create enqueues it as trial 0, unless told "
                "--no-enqueue-largest)")
    unit = formatting.energy_unit([base["energy_mj"], base["ann_energy_mj"]])
    line = (f"trial {int(base['number'])}, the space's largest subnet (the hand-designed Spikformer point): "
            f"{100 * base['accuracy']:.2f} %, {formatting.format_energy(base['energy_mj'], unit)} per image "
            f"(E_ref {formatting.format_energy(settings.aeb.e_ref, unit)})")
    if pd.isna(base["ann_energy_mj"]):  # compared with an ANN under the ops model only
        return line
    return (f"{line}; the same network as an ANN (E_MAC × dense MACs) "
            f"{formatting.format_energy(base['ann_energy_mj'], unit)}, {base['energy_vs_ann']:.3g} × its energy")


def _summary(study: optuna.Study, settings: StudySettings, frame: pd.DataFrame, front: pd.DataFrame) -> str:
    aeb, space = settings.aeb, settings.space
    total = len(study.get_trials(deepcopy=False))
    infeasible = int((~frame["feasible"]).sum())
    unit = formatting.energy_unit(frame["energy_mj"])
    items = [
        ("Study", study.study_name),
        ("Objective", f"{settings.objective} ({OBJECTIVE_DESCRIPTIONS[settings.objective]})"),
        ("Data set", f"{settings.dataset.name} (trials scored on the validation split)"),
        ("Search space", space.name + (f": {space.description}" if space.description else "")),
        ("Baseline", baseline_summary(frame, settings)),
        ("F_AEB", f"Acc × (E / E_ref)^w, E_ref = {formatting.format_energy(aeb.e_ref, unit)}, alpha = {aeb.alpha}, "
                  f"beta = {aeb.beta}"),
        ("Trials", f"{len(frame)} complete of {total}; {len(front)} on the {_front_name(settings.objective)}"
                   + (f"; {infeasible} over budget" if infeasible else "")),
    ]
    if not front.empty:
        items.append(("Best F_AEB", _trial_line(analysis.best_aeb(frame), unit)))
        items.append(("What F_AEB weighs", formatting.exchange_rate_text(aeb)))
        items.append(("Knee of the front", _trial_line(analysis.knee(front, objective=settings.objective), unit)))
    items += [("Units", "accuracy in percent of the validation split; energy per image in "
                        f"{unit[0]} (the study stores accuracy as a fraction and energy in mJ)"),
              ("Energy model", formatting.energy_model_text(settings.evaluation.energy_model,
                                                          settings.evaluation.profile)),
              ("Energy models recorded", ", ".join(analysis.recorded_energy_models(frame)) or "none (an older study)"),
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
    compare_model: str | None = None,
) -> Path:
    """Write one self-contained HTML file: summary, front table and the figures.

    The figures: the front (`front_figures`: one for a 2-D study, the 3-D scatter and its
    projections for ``pareto3``), the hypervolume history against the reference point of
    ``benchmarks/bench_search.py`` (`studies.study.study_hypervolume`), the energy breakdown
    of one trial, the front under the study's energy model beside another recorded one
    (`energy_models_figure`, with a table of every trial on any model's front) and the genes
    of every trial. The baseline (the largest subnet) is marked,
    and the front table states each trial against it and against the same network as an ANN.

    The energy breakdown is the table the trial stored (`studies.layer_artifacts`); only a trial
    that stored none (a study created before tables were stored) is evaluated again on the
    validation split, which needs the study's supernet checkpoint and data set. plotly.js is
    inlined once; the file opens offline. It is written atomically (temporary file, then
    rename).

    Args:
        study: An autospk study.
        settings: Its stored settings (`studies.study.load`).
        path: Where to write the report.
        breakdown_trial: Trial of the energy breakdown (default: the F_AEB-best trial).
        device: Where to measure a trial that stored no table (default: cuda if available).
        compare_model: The recorded energy model to draw the front under beside the study's own
            (default: ``ops``, or ``loihi`` for a study searched under ``ops``).

    Returns:
        The report's path.

    Raises:
        StudyError: for a study without complete trials, an unknown or incomplete trial, or a
            `compare_model` its trials did not record.
    """
    path = Path(path)
    frame = trials_frame(study, settings)
    if frame.empty:
        raise StudyError(f"study '{study.study_name}' has no complete trials yet; run `autospk-study optimize` first")
    front = analysis.pareto_front(frame, objective=settings.objective)
    chosen = select_trial(study, settings, "best" if breakdown_trial is None else breakdown_trial, frame=frame)
    layers, source = trial_layers(settings, chosen, device=device)
    why = "the F_AEB-best trial" if breakdown_trial is None else "the chosen trial"
    breakdown_title = (f"{BREAKDOWN_TITLE} of trial {chosen.number} ({why}; validation "
                       f"accuracy {100 * chosen.user_attrs['accuracy']:.2f} %; {source})")
    front_sections = front_figures(frame, settings.objective)
    sections = [
        *front_sections,
        ("Search progress", hypervolume_figure(study_hypervolume(frame, settings))),
        (f"Energy breakdown of trial {chosen.number}", energy_breakdown_figure(layers, breakdown_title)),
    ]
    recorded = analysis.recorded_energy_models(frame)
    own = settings.evaluation.energy_model
    other = compare_model or ("ops" if own != "ops" else "loihi")
    if compare_model is not None and compare_model not in recorded:
        raise StudyError(f"study '{study.study_name}': no trial recorded energy model {compare_model!r}; its trials "
                         f"recorded {recorded or 'none'}")
    models_table = ""
    if own in recorded and other in recorded and other != own:
        sections.append((f"Energy models: {own} and {other}",
                         energy_models_figure(frame, (own, other), objective=settings.objective)))
        changes = analysis.front_changes(frame, recorded, objective=settings.objective)
        units = {m: formatting.energy_unit(frame[f"energy_mj_{m}"].dropna()) for m in recorded}
        models_table = _models_html(changes, recorded, units)
    sections.append(("Genes", genes_parallel_figure(frame)))
    figures = []
    for i, (heading, fig) in enumerate(sections):
        div = fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False},
                          default_width="100%")
        figures.append(f"<h2>{html.escape(heading)}</h2>\n{div}")
        if i == len(front_sections) - 1:
            figures.append(f"<h2>Trials on the {_front_name(settings.objective)}</h2>\n{_front_html(front, frame)}")
        if heading.startswith("Energy models:") and models_table:
            figures.append(f"<h2>Fronts under every recorded energy model</h2>\n{models_table}")
    page = PAGE.substitute(name=html.escape(study.study_name), css=_CSS,
                           summary=_summary(study, settings, frame, front), sections="\n".join(figures))
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
