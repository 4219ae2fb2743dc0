"""The study's note on optuna-dashboard: its objective, data, energy model, F_AEB and baseline, in Markdown.
"""

from __future__ import annotations

from energy import ann_energy
from nas.settings import METRIC_NAMES

from . import formatting
from .layer_artifacts import FILENAME
from .settings import StudySettings


def _baseline_note(settings: StudySettings, measured, enqueued: bool) -> str:
    """The note's paragraph on the baseline; `measured`: the largest subnet's score, if `create` measured it."""
    which = ("**Baseline: trial 0**, the space's largest subnet" if enqueued else
             "**Baseline**: the first trial of the space's largest subnet (not enqueued by this create)")
    text = (f"{which}, the hand-designed Spikformer point of this space: `autospk-study show --baseline`, "
            "`autospk-study plot` and the notebook state every trial's accuracy and energy against it, and "
            "its energy against that of the same network run as an ANN (E_MAC x dense MACs).")
    ann = ann_energy(settings.supernet_cfg, profile=settings.evaluation.profile)(settings.space.largest())
    if measured is not None:
        energy = measured.energy.energy_mj
        unit = formatting.energy_unit([energy, ann])
        text += (f" Measured at create: validation accuracy {100 * measured.accuracy:.2f} %, "
                 f"{formatting.format_energy(energy, unit)} per image (E_ref); as an ANN "
                 f"{formatting.format_energy(ann, unit)} ({energy / ann:.3g} x).")
    else:
        text += f" As an ANN it costs {formatting.format_energy(ann)} per image."
    return text


def dashboard_note(settings: StudySettings, measured=None, enqueued: bool = True) -> str:
    space, aeb = settings.space, settings.aeb
    genes = "\n".join(f"| {g} | {', '.join(map(str, v))} |" for g, v in space.genes.items())
    budgets = ", ".join(f"{k}={v}" for k, v in settings.budgets.to_dict().items() if v is not None) or "none"
    evaluation = settings.evaluation
    scored = "the validation split" if evaluation.eval_images is None else (
        f"a fixed stratified subset of {evaluation.eval_images} validation images")
    rejection = " Early rejection: on (rejected trials are PRUNED)." if evaluation.early_rejection else ""
    return (
        f"# autospk study: {settings.objective}\n\n"
        f"Objective: **{settings.objective}** ({', '.join(METRIC_NAMES[settings.objective])}). "
        f"Data set: **{settings.dataset.name}** (scored on {scored}).{rejection} "
        f"Supernet: `{settings.checkpoint}`.\n\n"
        f"Energy model: **{formatting.energy_model_text(evaluation.energy_model, evaluation.profile)}**, first layer "
        f"{evaluation.first_layer}; every complete trial records its energy under "
        f"{', '.join(evaluation.energy_models)} (user attr `energies_mj`).\n\n"
        f"F_AEB = Acc x (E / E_ref)^w with E_ref = {aeb.e_ref:.6g} mJ ({formatting.format_energy(aeb.e_ref)}), "
        f"alpha = {aeb.alpha}, beta = {aeb.beta}. Budgets: {budgets}.\n\n"
        f"{formatting.exchange_rate_text(aeb)}\n\n"
        f"{_baseline_note(settings, measured, enqueued)}\n\n"
        "Units: objective values and user attrs hold accuracy as a fraction in [0, 1] and energy in mJ per "
        "image (`autospk-study show` and `plot` print percent and a unit that suits the values). Each trial "
        f"scored in full stores its per-layer energy table as an artifact, `{FILENAME}`"
        + (f" (folder `{settings.artifact_dir}`: `optuna-dashboard URL --artifact-dir {settings.artifact_dir}`)."
           if settings.artifact_dir else ".") + "\n\n"
        f"Search space **{space.name}**: {space.description}\n\n| gene | choices |\n|---|---|\n{genes}\n"
    )
