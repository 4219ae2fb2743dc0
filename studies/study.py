"""Create and load autospk studies: everything a worker needs is stored with the study.

A study's user attr ``autospk`` holds its settings (objective, checkpoint, space, data set,
F_AEB, budgets, sampler, evaluation); samplers are not stored by Optuna, so `load` re-creates
ours from those settings. Each study also gets metric names and an optuna-dashboard note.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from energy import dense_macs
from nas import (
    DataSplits,
    DIRECTIONS,
    METRIC_NAMES,
    OBJECTIVES,
    AEBSettings,
    Budgets,
    SearchSpace,
    SpikformerNSGAIISampler,
    SubnetEvaluator,
    SubnetObjective,
    load_checkpoint,
    load_dataset,
    supernet_from_checkpoint,
)
from nas.fitness import DEFAULT_ALPHA, DEFAULT_BETA

from .errors import StudyError
from .storage import open_storage

SETTINGS_ATTR = "autospk"
SETTINGS_VERSION = 1
WORKER_ATTR = "autospk:worker"


def _device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _note(settings: dict[str, Any]) -> str:
    space, aeb, ds = settings["space"], settings["aeb"], settings["dataset"]
    genes = "\n".join(f"| {g} | {', '.join(map(str, v))} |" for g, v in space["genes"].items())
    budgets = ", ".join(f"{k}={v}" for k, v in settings["budgets"].items() if v is not None) or "none"
    return (
        f"# autospk study: {settings['objective']}\n\n"
        f"Objective: **{settings['objective']}** ({', '.join(METRIC_NAMES[settings['objective']])}). "
        f"Data set: **{ds['name']}** (scored on the validation split). "
        f"Supernet: `{settings['checkpoint']}`.\n\n"
        f"F_AEB = Acc x (E / E_ref)^w with E_ref = {aeb['e_ref']:.6g} mJ, alpha = {aeb['alpha']}, "
        f"beta = {aeb['beta']}. Budgets: {budgets}.\n\n"
        f"Search space **{space['name']}**: {space['description']}\n\n| gene | choices |\n|---|---|\n{genes}\n"
    )


def load_evaluator(settings: dict[str, Any], *, device: str | None = None) -> tuple[SubnetEvaluator, DataSplits]:
    """The study's supernet and data, and an evaluator with the study's evaluation settings.

    The evaluator recalibrates BN on the ``train_eval`` split and scores the ``val``
    split, exactly as the search did.

    Args:
        settings: The study's stored settings.
        device: Where to run (default: cuda if available, else cpu).

    Raises:
        StudyError: if the checkpoint does not match the study's search space.
    """
    dev = _device(device)
    net, space, dataset = supernet_from_checkpoint(load_checkpoint(settings["checkpoint"]), dev)
    if space.to_dict() != settings["space"]:
        raise StudyError(f"checkpoint {settings['checkpoint']} does not match the study's search space")
    data = load_dataset(dataset)
    ev = settings["evaluation"]
    evaluator = SubnetEvaluator(net, data.train_eval, data.val, calib_batches=ev["calib_batches"],
                                calib_batch_size=ev["calib_batch_size"], batch_size=ev["batch_size"],
                                profile=ev["profile"], device=dev)
    return evaluator, data


def _objective(settings: dict[str, Any], device: str | None) -> SubnetObjective:
    """The objective a worker runs, built from the study's stored settings."""
    evaluator, _ = load_evaluator(settings, device=device)
    return SubnetObjective(SearchSpace.from_dict(settings["space"]), evaluator, settings["objective"],
                           AEBSettings(**settings["aeb"]), Budgets(**settings["budgets"]))


def make_sampler(space: SearchSpace, settings: dict[str, Any], supernet: dict[str, Any] | None = None,
                 *, seed_offset: int = 0) -> SpikformerNSGAIISampler:
    """Our sampler from stored settings; generation 0 is stratified by analytic energy."""
    from models import SupernetConfig

    kwargs = dict(settings)
    kwargs["seed"] = kwargs["seed"] + seed_offset
    cost = None
    if supernet is not None:
        spec = SupernetConfig.from_dict(supernet)
        cost = lambda cfg: dense_macs(spec, cfg).energy_mj()  # noqa: E731
    return SpikformerNSGAIISampler(space, cost=cost, **kwargs)


def create(
    storage: str,
    study_name: str,
    *,
    objective: str,
    checkpoint: str | Path,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    e_ref: float | None = None,
    max_params: int | None = None,
    max_energy_mj: float | None = None,
    population_size: int = 50,
    num_parents: int = 10,
    crossover_fraction: float = 0.5,
    global_mutation_prob: float = 0.4,
    block_mutation_prob: float = 0.2,
    neighbour_mutation: bool = False,
    candidates: int = 4,
    seed: int = 0,
    calib_batches: int = 4,
    calib_batch_size: int = 64,
    batch_size: int = 256,
    profile: str = "fp32",
    heartbeat_interval: int = 10,
    enqueue_largest: bool = True,
    skip_if_exists: bool = False,
    device: str | None = None,
) -> optuna.Study:
    """Create a study that `optimize` can run from its storage and name alone.

    E_ref defaults to the measured energy of the space's largest subnet, which is also
    enqueued as the first trial (a known-good architecture).

    Raises:
        StudyError: for an existing study (unless `skip_if_exists`), an unknown objective
            or out-of-range settings.
    """
    if objective not in OBJECTIVES:
        raise StudyError(f"unknown objective '{objective}'; choose from {list(OBJECTIVES)}")
    store = open_storage(storage)
    if study_name in {s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)}:
        if not skip_if_exists:
            raise StudyError(f"study '{study_name}' already exists in {storage}; choose another --study-name "
                             "or pass --skip-if-exists")
        study, settings = load(storage, study_name)
        if settings["objective"] != objective:
            raise StudyError(f"study '{study_name}' exists with objective '{settings['objective']}', not '{objective}'")
        if Path(settings["checkpoint"]) != Path(checkpoint).resolve():
            raise StudyError(f"study '{study_name}' exists for checkpoint {settings['checkpoint']}, "
                             f"not {Path(checkpoint).resolve()}")
        return study
    state = load_checkpoint(checkpoint)
    space = SearchSpace.from_dict(state["space"])
    sampler_settings = {
        "population_size": population_size, "num_parents": num_parents,
        "crossover_fraction": crossover_fraction, "global_mutation_prob": global_mutation_prob,
        "block_mutation_prob": block_mutation_prob, "neighbour_mutation": neighbour_mutation,
        "candidates": candidates, "seed": seed,
    }
    try:
        make_sampler(space, sampler_settings)
        Budgets(max_params, max_energy_mj)
        if e_ref is not None:
            AEBSettings(e_ref=e_ref, alpha=alpha, beta=beta)
    except ValueError as err:
        raise StudyError(str(err)) from None
    if calib_batches < 1 or calib_batch_size < 1 or batch_size < 1:
        raise StudyError("calib_batches, calib_batch_size and batch_size must be >= 1")
    settings: dict[str, Any] = {
        "version": SETTINGS_VERSION,
        "objective": objective,
        "checkpoint": str(Path(checkpoint).resolve()),
        "space": state["space"],
        "dataset": state["dataset"],
        "supernet": state["supernet"],
        "aeb": {"e_ref": e_ref if e_ref is not None else 1.0, "alpha": alpha, "beta": beta},
        "budgets": {"max_params": max_params, "max_energy_mj": max_energy_mj},
        "sampler": sampler_settings,
        "evaluation": {"calib_batches": calib_batches, "calib_batch_size": calib_batch_size,
                       "batch_size": batch_size, "profile": profile},
        "heartbeat_interval": heartbeat_interval,
    }
    if e_ref is None:
        evaluator, _ = load_evaluator(settings, device=device)
        settings["aeb"]["e_ref"] = evaluator(space.largest()).energy.energy_mj
        AEBSettings(**settings["aeb"])
    study = optuna.create_study(storage=store, study_name=study_name, directions=DIRECTIONS[objective],
                                sampler=make_sampler(space, sampler_settings, settings["supernet"]))
    study.set_metric_names(METRIC_NAMES[objective])
    study.set_user_attr(SETTINGS_ATTR, settings)
    for key in ("objective", "dataset", "space"):
        study.set_user_attr(key, settings[key]["name"] if isinstance(settings[key], dict) else settings[key])
    study.set_user_attr("e_ref_mj", settings["aeb"]["e_ref"])
    _save_note(study, settings)
    if enqueue_largest:
        study.enqueue_trial(space.params_from_config(space.largest()), user_attrs={"enqueued": "largest"})
    return study


def _save_note(study: optuna.Study, settings: dict[str, Any]) -> None:
    from optuna_dashboard import save_note

    save_note(study, _note(settings))


def load(storage: str, study_name: str, *, seed_offset: int = 0,
         heartbeat: bool = False) -> tuple[optuna.Study, dict[str, Any]]:
    """Load an autospk study with our sampler re-created from its stored settings.

    Raises:
        StudyError: if the study does not exist or was not created by autospk.
    """
    store = open_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    if study_name not in names:
        raise StudyError(f"no study '{study_name}' in {storage}; studies there: {sorted(names) or 'none'}")
    probe = optuna.load_study(study_name=study_name, storage=store)
    settings = probe.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(settings, dict) or settings.get("version") != SETTINGS_VERSION:
        raise StudyError(f"study '{study_name}' was not created by autospk-study create")
    if heartbeat and settings.get("heartbeat_interval"):
        store = open_storage(storage, heartbeat_interval=settings["heartbeat_interval"])
    space = SearchSpace.from_dict(settings["space"])
    sampler = make_sampler(space, settings["sampler"], settings["supernet"], seed_offset=seed_offset)
    return optuna.load_study(study_name=study_name, storage=store, sampler=sampler), settings


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail and re-enqueue RUNNING trials whose worker process on this host has died.

    Complements database heartbeats, and is the crash recovery of journal storages.
    Returns the numbers of the trials failed.
    """
    failed = []
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.system_attrs.get(WORKER_ATTR)
        if not worker or worker.get("host") != host or _alive(worker.get("pid", -1)):
            continue
        if study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            failed.append(t.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_worker(
    storage: str,
    study_name: str,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed_offset: int = 0,
    device: str | None = None,
    show_progress_bar: bool = False,
) -> optuna.Study:
    """Run trials until the study holds `n_trials` complete trials or `timeout` passes."""
    study, settings = load(storage, study_name, seed_offset=seed_offset, heartbeat=True)
    objective_fn = _objective(settings, device)
    me = {"host": socket.gethostname(), "pid": os.getpid()}

    def objective(trial: optuna.Trial):
        study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, me)
        fail_dead_trials(study)
        return objective_fn(trial)

    fail_dead_trials(study)
    callbacks = []
    if n_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE,)))
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if remaining <= 0:
            return study
    study.optimize(objective, n_trials=None if n_trials is None else remaining, timeout=timeout,
                   callbacks=callbacks, show_progress_bar=show_progress_bar, gc_after_trial=False)
    return study
