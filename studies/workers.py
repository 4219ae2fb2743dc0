"""Running a study: worker processes, crash recovery and progress.

`run_worker` runs trials in this process; `optimize` starts several worker processes on
this host and follows their progress. Workers on other hosts run `run_worker` (through
``autospk-study optimize``) against the same database storage.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import warnings

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from .errors import StudyError
from .storage import open_storage
from .study import load, load_evaluator

WORKER_ATTR = "autospk:worker"
"""Trial system attr: the host and process id of the worker running the trial."""


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail and re-enqueue RUNNING trials whose worker process on this host has died.

    Complements database heartbeats, and is the crash recovery of journal storages.
    A trial another worker finishes first is left to it.

    Returns:
        The numbers of the trials failed here.
    """
    from nas._optuna_private import fail_running_trial

    failed = []
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.system_attrs.get(WORKER_ATTR)
        if not worker or worker.get("host") != host or _alive(worker.get("pid", -1)):
            continue
        if fail_running_trial(study, t):
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


def quiet_optuna() -> None:
    """Optuna flags the heartbeat, metric names and retry callback as experimental."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


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
    """Run trials in this process until the study holds `n_trials` complete trials or
    `timeout` seconds pass.

    Args:
        storage: Storage URL.
        study_name: The study.
        n_trials: Complete trials the study should hold (None: until `timeout`).
        timeout: Seconds.
        seed_offset: Added to the sampler's seed, so that workers draw differently.
        device: Where to evaluate (default: cuda if available, else cpu).
        show_progress_bar: Optuna's progress bar.
    """
    from nas._optuna_private import set_trial_system_attr
    from nas.objective import SubnetObjective

    study, settings = load(storage, study_name, seed_offset=seed_offset, heartbeat=True)
    evaluator, _ = load_evaluator(settings, device=device)
    evaluate = SubnetObjective(settings.space, evaluator, settings.objective, settings.aeb, settings.budgets)
    me = {"host": socket.gethostname(), "pid": os.getpid()}

    def objective(trial: optuna.Trial):
        set_trial_system_attr(study, trial, WORKER_ATTR, me)
        fail_dead_trials(study)
        return evaluate(trial)

    fail_dead_trials(study)
    callbacks = []
    remaining = None
    if n_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE,)))
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if remaining <= 0:
            return study
    study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks,
                   show_progress_bar=show_progress_bar, gc_after_trial=False)
    return study


def _worker_main(storage: str, name: str, n_trials: int | None, timeout: float | None, index: int,
                 device: str | None, threads: int) -> None:
    import torch

    quiet_optuna()
    # Workers sharing a host would oversubscribe its cores with torch's default threads.
    torch.set_num_threads(threads)
    run_worker(storage, name, n_trials=n_trials, timeout=timeout, seed_offset=index, device=device)


def optimize(storage: str, name: str, *, n_trials: int | None, timeout: float | None, workers: int = 1,
             device: str | None = None, progress: bool = True) -> int:
    """Run `workers` processes on one study until it holds `n_trials` complete trials.

    Args:
        storage: Storage URL.
        name: The study.
        n_trials: Complete trials the study should hold (None: until `timeout`).
        timeout: Seconds each worker runs at most.
        workers: Worker processes on this host; each gets an equal share of the CPU threads.
        device: Where the workers evaluate.
        progress: Show a progress bar of complete trials.

    Returns:
        The number of complete trials at the end.

    Raises:
        StudyError: if a worker failed.
    """
    load(storage, name)
    # One storage for the whole poll: on a database each open builds a connection pool.
    store = open_storage(storage)
    study_id = store.get_study_id_from_name(name)

    def complete() -> int:
        return store.get_n_trials(study_id, state=TrialState.COMPLETE)

    bar = tqdm(total=n_trials, initial=min(complete(), n_trials or 0), desc=name, unit="trial",
               disable=not progress, dynamic_ncols=True)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_worker_main, args=(storage, name, n_trials, timeout, i, device, threads))
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            bar.n = min(complete(), bar.total or 10**9)
            bar.refresh()
    finally:
        for p in procs:
            p.join()
        done = complete()
        bar.n = min(done, bar.total or 10**9)
        bar.close()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise StudyError(f"{len(failed)} of {workers} workers failed (exit codes {failed}); see their messages above")
    return done
