"""Create and load autospk studies, and go back from a study to its supernet.

A study's user attr ``autospk`` holds its `StudySettings`; Optuna does not store samplers,
so `load` re-creates ours from them. Each study also gets metric names and an
optuna-dashboard note.

`create` takes several writes, and a process killed among them leaves a study behind. The
settings are written last, so a study without them that holds no trials but the largest
subnet `create` enqueues is half-created: `load` refuses it, saying so, and `create` of the
same name replaces it. Right after the study itself, `create` records its own process
(`CREATOR_ATTR`), so that another `create` of the name tells a study being created from one
whose creator died: it replaces only the latter, and only the one it found (by its id, checked
again just before). Two `create`s of a new name at once: one makes the study, the other says
so in one line (or, with ``skip_if_exists``, waits for it and uses it). `delete` removes any
study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import optuna.artifacts

from models import ConfigError
from nas.fitness import AEBSettings
from nas.settings import DIRECTIONS, METRIC_NAMES, Budgets, EvaluationSettings, SamplerSettings

from .builders import check_checkpoint, make_evaluator, make_sampler
from .creation import (
    CREATOR_ATTR,
    ENQUEUED_LARGEST,
    creating,
    half_created,
    half_created_error,
    in_progress_error,
    replace_half_created,
    settle,
    study_names,
    wait_for_settings,
)
from .errors import StudyError
from .layer_artifacts import artifact_store, default_artifact_dir
from .note import dashboard_note
from .processes import this_process
from .settings import HEARTBEAT_INTERVAL, MAX_RETRIES, SETTINGS_ATTR, NewerVersionError, StudySettings, check_study_name
from .storage import mask_url, open_storage

_log = logging.getLogger(__name__)

def _existing_study(store: optuna.storages.BaseStorage, storage: str, study_name: str) -> optuna.Study:
    """The study of that name, or a `StudyError` listing the studies the storage holds."""
    names = study_names(store)
    if study_name not in names:
        raise StudyError(f"no study '{study_name}' in {mask_url(storage)}; studies there: {names or 'none'}")
    return optuna.load_study(study_name=study_name, storage=store)


def create(
    storage: str,
    study_name: str,
    *,
    objective: str,
    checkpoint: str | Path,
    aeb: AEBSettings = AEBSettings(),
    budgets: Budgets = Budgets(),
    sampler: SamplerSettings = SamplerSettings(),
    evaluation: EvaluationSettings = EvaluationSettings(),
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    max_retries: int = MAX_RETRIES,
    enqueue_largest: bool = True,
    skip_if_exists: bool = False,
    device: str | None = None,
    artifact_dir: str | Path | None = None,
) -> optuna.Study:
    """Create a study that workers can run from its storage and name alone.

    Without ``aeb.e_ref``, the reference energy is the measured energy of the space's largest
    subnet, which is also enqueued as the first trial (a known-good architecture).

    Args:
        storage: Storage URL.
        study_name: Name of the new study.
        objective: One of `nas.settings.OBJECTIVES`: ``aeb``, ``pareto`` or ``pareto3``.
        checkpoint: Supernet checkpoint from ``train-supernet``.
        aeb: F_AEB settings.
        budgets: Optional limits (Optuna constraints).
        sampler: Settings of our NSGA-II sampler.
        evaluation: How subnets are scored.
        heartbeat_interval: Seconds between heartbeats of a running trial (database storages).
        max_retries: Retries of a trial whose worker died, before its architecture is given
            up on (`StudySettings.max_retries`).
        enqueue_largest: Evaluate the largest subnet first: the study's baseline, trial 0
            (user attr ``baseline``; see `analysis.baseline`).
        skip_if_exists: Return the existing study of that name instead of failing, if it was
            created with these settings on this checkpoint (see `_check_same_study`); one
            that another process is creating is waited for. A half-created study (see the
            module doc) is replaced whether or not this is set.
        device: Where to measure the reference energy.
        artifact_dir: Folder of the study's artifacts, each trial's per-layer energy table
            (`studies.layer_artifacts`); every worker must be able to write it. Default:
            `layers.default_artifact_dir`.

    Raises:
        StudyError: for an existing study (unless `skip_if_exists`) or a mismatch with it.
        ConfigError: for a blank study name or out-of-range settings.
    """
    from nas.checkpoint import load_checkpoint

    check_study_name(study_name)
    store = open_storage(storage)
    existing = settle(store, study_name)
    if existing is not None and creating(existing) is not None:
        if not skip_if_exists:
            raise in_progress_error(study_name, creating(existing))
        wait_for_settings(store, study_name)
        existing = settle(store, study_name)
    replace = existing is not None and half_created(existing) and creating(existing) is None
    if existing is not None and not replace:
        return _existing(storage, study_name, skip_if_exists=skip_if_exists, objective=objective,
                         checkpoint=checkpoint, aeb=aeb, budgets=budgets, sampler=sampler, evaluation=evaluation,
                         heartbeat_interval=heartbeat_interval, max_retries=max_retries)
    state = load_checkpoint(checkpoint)
    measured = None
    if aeb.e_ref is None:
        evaluator, _ = make_evaluator(state, evaluation, path=checkpoint, device=device)
        measured = evaluator(state.space.largest())
        aeb = dataclasses.replace(aeb, e_ref=measured.energy.energy_mj)
    folder = Path(artifact_dir).resolve() if artifact_dir is not None else default_artifact_dir(storage, checkpoint)
    settings = StudySettings(
        objective=objective, checkpoint=str(Path(checkpoint).resolve()), space=state.space, dataset=state.dataset,
        supernet_cfg=state.supernet_cfg, aeb=aeb, budgets=budgets, sampler=sampler, evaluation=evaluation,
        heartbeat_interval=heartbeat_interval, max_retries=max_retries, data_fingerprint=state.data_fingerprint,
        artifact_dir=str(folder),
    )
    made = not folder.exists()
    artifact_store(settings)  # the folder exists, or create fails before anything is written
    try:
        if replace:
            replace_half_created(store, existing)
        try:
            study = optuna.create_study(storage=store, study_name=study_name, directions=DIRECTIONS[objective],
                                        sampler=make_sampler(settings))
        except optuna.exceptions.DuplicatedStudyError:
            if not skip_if_exists:
                raise StudyError(f"study '{study_name}' was created by another process at the same moment; use it "
                                 "(--skip-if-exists waits for it) or choose another --study-name") from None
            wait_for_settings(store, study_name)
            return _existing(storage, study_name, skip_if_exists=True, objective=objective, checkpoint=checkpoint,
                             aeb=aeb, budgets=budgets, sampler=sampler, evaluation=evaluation,
                             heartbeat_interval=heartbeat_interval, max_retries=max_retries)
        study.set_user_attr(CREATOR_ATTR, {**this_process(), "at": time.time()})
        study.set_metric_names(METRIC_NAMES[objective])
        # Plain attrs that optuna-dashboard and `list` show without parsing the settings.
        study.set_user_attr("objective", objective)
        study.set_user_attr("dataset", settings.dataset.name)
        study.set_user_attr("space", settings.space.name)
        study.set_user_attr("e_ref_mj", aeb.e_ref)
        from optuna_dashboard import save_note

        save_note(study, dashboard_note(settings, measured, enqueue_largest))
        if enqueue_largest:
            study.enqueue_trial(settings.space.params_from_config(settings.space.largest()),
                                user_attrs=ENQUEUED_LARGEST)
        # Last, so that a study without settings is one whose create did not finish.
        study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    except BaseException:
        if made:  # a failed create leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return study


def _existing(storage: str, study_name: str, *, skip_if_exists: bool, **asked: Any) -> optuna.Study:
    """The study that exists under that name, if ``skip_if_exists`` and it was created as `asked`."""
    if not skip_if_exists:
        raise StudyError(f"study '{study_name}' already exists in {mask_url(storage)}; choose another --study-name "
                         "or pass --skip-if-exists")
    study, settings = load(storage, study_name)
    _check_same_study(settings, study_name, **asked)
    return study


def _check_same_study(stored: StudySettings, study_name: str, *, objective: str, checkpoint: str | Path,
                      aeb: AEBSettings, budgets: Budgets, sampler: SamplerSettings, evaluation: EvaluationSettings,
                      heartbeat_interval: int, max_retries: int) -> None:
    """Refuse to reuse a study created otherwise than `create` is now asked to.

    The objective, the checkpoint (its path, and its contents: `check_checkpoint`) and every
    stored setting must match; the reference energy only when one is asked for (None lets
    `create` measure it, which the study did).

    Raises:
        StudyError: naming what differs, stored value first.
    """
    if stored.objective != objective:
        raise StudyError(f"study '{study_name}' exists with objective '{stored.objective}', not '{objective}'")
    if Path(stored.checkpoint) != Path(checkpoint).resolve():
        raise StudyError(f"study '{study_name}' exists for checkpoint {stored.checkpoint}, "
                         f"not {Path(checkpoint).resolve()}")
    try:
        check_checkpoint(stored)
    except StudyError as err:
        raise StudyError(f"study '{study_name}' exists, but its {err}") from None
    skip = {"e_ref"} if aeb.e_ref is None else set()
    differences = [f"{where}.{field.name}={getattr(old, field.name)!r}, not {getattr(new, field.name)!r}"
                   for where, old, new in (("aeb", stored.aeb, aeb), ("budgets", stored.budgets, budgets),
                                           ("sampler", stored.sampler, sampler),
                                           ("evaluation", stored.evaluation, evaluation))
                   for field in dataclasses.fields(old)
                   if field.name not in skip and getattr(old, field.name) != getattr(new, field.name)]
    if stored.heartbeat_interval != heartbeat_interval:
        differences.append(f"heartbeat_interval={stored.heartbeat_interval}, not {heartbeat_interval}")
    if stored.max_retries != max_retries:
        differences.append(f"max_retries={stored.max_retries}, not {max_retries}")
    if differences:
        raise StudyError(f"study '{study_name}' exists with other settings: {'; '.join(differences)}; create it "
                         "with the stored settings, choose another study name, or delete the study first")


def load(storage: str, study_name: str, *, seed_offset: int = 0,
         heartbeat: bool = False) -> tuple[optuna.Study, StudySettings]:
    """Load an autospk study with our sampler re-created from its stored settings.

    Args:
        storage: Storage URL.
        study_name: The study.
        seed_offset: Added to the sampler's seed (one offset per worker).
        heartbeat: Open the storage with the study's heartbeat (for workers).

    Raises:
        StudyError: if the study does not exist, is half-created or was not created by autospk.
        StorageError: if the storage does not exist (it is not created).
    """
    store = open_storage(storage, existing=True)
    study = _existing_study(store, storage, study_name)
    if half_created(study):
        raise half_created_error(study_name)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(stored, dict):
        raise StudyError(f"study '{study_name}' was not created by autospk-study create")
    try:
        settings = StudySettings.from_dict(stored)
    except NewerVersionError as err:
        raise StudyError(f"study '{study_name}' {err}") from None
    except ConfigError as err:
        raise StudyError(f"study '{study_name}': {err}") from None
    if heartbeat:
        store = open_storage(storage, heartbeat_interval=settings.heartbeat_interval)
    return optuna.load_study(study_name=study_name, storage=store,
                             sampler=make_sampler(settings, seed_offset=seed_offset)), settings


def delete(storage: str, study_name: str, *, confirm: Callable[[int], bool] | None = None) -> int | None:
    """Delete a study and all its trials, whole or half-created, and the files of their
    artifacts (the per-layer energy tables). Stop its workers first.

    Args:
        storage: Storage URL.
        study_name: The study.
        confirm: Called with the study's number of trials before anything is deleted; the
            study is deleted only if it returns True. None: delete without asking.

    Returns:
        The number of trials deleted, or None if `confirm` declined.

    Raises:
        StudyError: if there is no such study.
        StorageError: if the storage does not exist (it is not created).
    """
    store = open_storage(storage, existing=True)
    study = _existing_study(store, storage, study_name)
    trials = study.get_trials(deepcopy=False)
    if confirm is not None and not confirm(len(trials)):
        return None
    stored = study.user_attrs.get(SETTINGS_ATTR)
    folder = stored.get("artifact_dir") if isinstance(stored, dict) else None
    # Listed before the study goes: artifacts are recorded on its trials and on the study itself.
    artifact_ids = [meta.artifact_id for item in (study, *trials)
                    for meta in optuna.artifacts.get_all_artifact_meta(item, storage=store)] if folder else []
    optuna.delete_study(study_name=study_name, storage=store)
    if folder:
        _remove_artifacts(Path(folder), artifact_ids)
    return len(trials)


def _remove_artifacts(folder: Path, artifact_ids: list[str]) -> None:
    """Remove the files of these artifacts from a study's artifact folder (those already gone are skipped)."""
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.artifacts.exceptions import ArtifactNotFound

    artifacts = FileSystemArtifactStore(folder)
    for artifact_id in artifact_ids:
        try:
            artifacts.remove(artifact_id)
        except (ArtifactNotFound, ValueError):
            pass


def open_study(storage: str, name: str | None = None) -> tuple[optuna.Study, StudySettings]:
    """Load an autospk study and its settings, choosing the study when there is no doubt.

    Args:
        storage: Storage URL.
        name: Study name. None: the storage's only study, or else its only pareto study
            (``autospk-study quickstart`` puts an aeb and a pareto study in one storage).

    Raises:
        StudyError: if the storage holds no study, the named study does not exist, or no
            name was given and the choice is ambiguous.
    """
    if name is None:
        summaries = optuna.get_all_study_summaries(open_storage(storage, existing=True),
                                                     include_best_trial=False)
        pareto = [s for s in summaries if s.user_attrs.get("objective") == "pareto"]
        if len(summaries) == 1 or len(pareto) == 1:
            name = (summaries if len(summaries) == 1 else pareto)[0].study_name
        elif not summaries:
            raise StudyError(f"no studies in {mask_url(storage)}; create one with `autospk-study create`")
        else:
            raise StudyError(f"{mask_url(storage)} holds several studies; name one of "
                             f"{sorted(s.study_name for s in summaries)}")
    return load(storage, name)


