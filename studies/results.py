"""Reading a study's results: its trials as a frame, the trial a name picks, a trial's per-layer
energy and the search's hypervolume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import optuna
import optuna.artifacts
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from energy import ann_energy
from models import ConfigError

from . import analysis, hypervolume
from .builders import load_evaluator
from .errors import StudyError
from .layer_artifacts import stored_layers
from .settings import StudySettings

if TYPE_CHECKING:
    from nas.evaluate import SubnetScore

_log = logging.getLogger(__name__)

TRIAL_CHOICES = ("best", "knee")
"""Names `select_trial` accepts besides a trial number."""


def trials_frame(study: optuna.Study, settings: StudySettings) -> pd.DataFrame:
    """`analysis.trials_frame` of the study's complete trials, with each one's energy as an ANN
    (the study's energy profile's E_MAC x dense MACs; under the ``ops`` energy model only, the
    one it compares with) and `analysis.compare_to_baseline`."""
    ev = settings.evaluation
    ann = ann_energy(settings.supernet_cfg, profile=ev.profile) if ev.energy_model == "ops" else None
    frame = analysis.trials_frame(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), settings.space,
                                  ann_energy=ann)
    return analysis.compare_to_baseline(frame)


def select_trial(study: optuna.Study, settings: StudySettings, which: str | int = "best", *,
                 frame: pd.DataFrame | None = None) -> FrozenTrial:
    """The trial `which` names: ``"best"`` (highest feasible F_AEB), ``"knee"`` (of the
    study's Pareto front, 3-D for ``pareto3``; see `analysis.knee`) or a trial number,
    which must be COMPLETE.

    Args:
        study: An autospk study.
        settings: Its settings.
        which: ``"best"``, ``"knee"`` or a trial number.
        frame: `trials_frame(study, settings)`, if already built.

    Raises:
        StudyError: for a study without complete trials, an unknown trial number or a
            trial that is not complete.
        ConfigError: for anything else than the allowed choices.
    """
    if isinstance(which, bool) or not isinstance(which, (int, np.integer, str)) or (
            isinstance(which, str) and which not in TRIAL_CHOICES):
        raise ConfigError(f"trial={which!r}; choose 'best', 'knee' or a trial number")
    trials = study.get_trials(deepcopy=False)
    if isinstance(which, str):
        frame = trials_frame(study, settings) if frame is None else frame
        if frame.empty:
            raise StudyError(f"study '{study.study_name}' has no complete trials yet; "
                             "run `autospk-study optimize` first")
        if which == "best":
            row = analysis.best_aeb(frame)
        else:
            row = analysis.knee(analysis.pareto_front(frame, objective=settings.objective),
                                objective=settings.objective)
        which = int(row["number"])
    by_number = {t.number: t for t in trials}
    if which not in by_number:
        span = f"0..{len(trials) - 1}" if trials else "none yet"
        raise StudyError(f"study '{study.study_name}' has no trial {which}; its trials are numbered {span}")
    trial = by_number[int(which)]
    if trial.state != TrialState.COMPLETE:
        complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
        raise StudyError(f"trial {which} of study '{study.study_name}' is {trial.state.name}, not COMPLETE; "
                         f"choose best, knee or a complete trial ({_numbers(complete)})")
    return trial


def _numbers(numbers: list[int], limit: int = 12) -> str:
    if not numbers:
        return "none yet"
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def measure_trial(settings: StudySettings, trial: FrozenTrial, *, device: str | None = None) -> SubnetScore:
    """Evaluate a trial's subnet again on the validation split, with its per-layer energy.

    Returns:
        The score; ``score.layer_table()`` is the per-layer breakdown.
    """
    evaluator, _ = load_evaluator(settings, device=device)
    return evaluator(settings.space.config_from_params(trial.params))


def trial_layers(settings: StudySettings, trial: FrozenTrial, *, device: str | None = None) -> tuple[pd.DataFrame, str]:
    """A trial's per-layer energy table: the one it stored, or else measured again.

    Args:
        settings: The study's settings.
        trial: A COMPLETE trial.
        device: Where to measure, if the trial stored no table.

    Returns:
        ``(layers, source)``: `nas.SubnetScore.layer_table`, and where it came from in a few
        words (``"stored with the trial"``, or why it was measured again).
    """
    try:
        layers = stored_layers(settings, trial)
    except StudyError as err:
        _log.warning("%s; measuring it again", err)
        measured = measure_trial(settings, trial, device=device).layer_table()
        return measured, "measured again: its stored table is missing"
    if layers is not None:
        return layers, "stored with the trial"
    return measure_trial(settings, trial, device=device).layer_table(), "measured again: the trial stored no table"


def study_hypervolume(frame: pd.DataFrame, settings: StudySettings) -> pd.DataFrame:
    """`hypervolume.hypervolume_history` of a study against `hypervolume.study_ref_point` (that of
    ``benchmarks/bench_search.py``), as a share of the reference box."""
    from models import count_params

    base = analysis.baseline(frame)
    ref = hypervolume.study_ref_point(
        settings.aeb.e_ref, baseline_accuracy=None if base is None else float(base["accuracy"]),
        params_ref=count_params(settings.supernet_cfg, settings.space.largest()), objective=settings.objective)
    return hypervolume.hypervolume_history(frame, ref, objective=settings.objective, normalise=True)


@dataclass(frozen=True)
class GivenUp:
    """An architecture given up on: every try killed its worker (`studies.recovery`).

    Attributes:
        number: The FAIL trial that records it.
        arch_id: The architecture.
        tries: How many times it was tried.
        cause: How its last try died, e.g. ``killed by SIGKILL``.
    """

    number: int
    arch_id: str
    tries: int
    cause: str


def given_up(study: optuna.Study) -> list[GivenUp]:
    """The architectures of a study given up on, in trial order."""
    from nas.study_index import ARCH_KEY, GAVE_UP_ATTR

    from .recovery import ATTEMPT

    return [GivenUp(t.number, str(t.system_attrs.get(ARCH_KEY, "?")), int(t.user_attrs.get(ATTEMPT, 1)),
                    str(t.user_attrs[GAVE_UP_ATTR]))
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if GAVE_UP_ATTR in t.user_attrs]
