"""Running a study: worker processes and their supervision.

`run_worker` runs trials in this process; `optimize` starts several worker processes on
this host and follows their progress. Workers on other hosts run `run_worker` (through
``autospk-study optimize``) against the same database storage.

Every worker runs `studies.recovery.fail_dead_trials` before each trial, and `optimize` as
soon as one of its workers dies; `studies.hosts` says how many workers a host can run and on
which devices; `studies.progress` shows the search's progress.

What the user sees: a worker that fails sends its error to `optimize`, which summarises
the failures in one line per cause (`WorkerFailure`; the tracebacks travel along for
``--verbose``); Ctrl-C stops every worker without a traceback. Progress is a bar on a
terminal and elsewhere (a log file) a plain line per generation, and at least every 30 s
while trials finish, both with the front size and the best value so far.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from models import ConfigError

from .builders import check_checkpoint, load_evaluator
from .errors import error_line
from .hosts import assign_devices, available_memory, check_devices, gpu_count, host_cores, worker_limit
from .layer_artifacts import LayerRecorder, artifact_store
from .outcomes import OptimizeResult, WorkerFailure, WorkersFailed, failures_summary
from .progress import SearchProgress
from .recovery import OwnerRecordingSampler, fail_dead_trials, orphan_grace, this_worker
from .storage import open_storage
from .study import load

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""The trials `n_trials` counts: scored in full, or rejected early (PRUNED, see
`nas.EvaluationSettings.early_rejection`). A rejected trial spent part of an evaluation; and
counting complete trials only could run forever once every new subnet gets rejected."""


EXIT_INTERRUPTED = 130
"""Exit status of a worker stopped by Ctrl-C (SIGINT), as a shell reports it."""


class _NoTracebacks(logging.Filter):
    """Drops Optuna's log of a trial failed by an error: the error's whole traceback, then
    ``Trial N failed with value None.``. The worker reports that error to `optimize`, which
    prints it in one line. A trial failed by a bad return value (no traceback) is still logged."""

    def __init__(self) -> None:
        super().__init__()
        self._dropped: str | None = None  # "Trial N", whose second line is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info is not None:
            self._dropped = message.split(" failed", 1)[0]
            return False
        if self._dropped is not None and message.startswith(f"{self._dropped} failed with value "):
            self._dropped = None
            return False
        return True


_NO_TRACEBACKS = _NoTracebacks()


def quiet_optuna(verbose: bool = False) -> None:
    """Optuna's log for the command line: warnings only, and no failed trial's traceback;
    with `verbose`, everything (each trial's result included).

    Optuna also flags the heartbeat, metric names and retry callback as experimental.
    """
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    log = logging.getLogger("optuna.study._optimize")
    if verbose:
        log.removeFilter(_NO_TRACEBACKS)
    else:
        log.addFilter(_NO_TRACEBACKS)
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
    """Run trials in this process until the study holds `n_trials` finished trials (`FINISHED`) or
    `timeout` seconds pass.

    Args:
        storage: Storage URL.
        study_name: The study.
        n_trials: Finished trials the study should hold (None: until `timeout`).
        timeout: Seconds.
        seed_offset: Added to the sampler's seed, so that workers draw differently.
        device: Where to evaluate (default: cuda if available, else cpu).
        show_progress_bar: Optuna's progress bar.
    """
    from nas.objective import SubnetObjective

    study, settings = load(storage, study_name, seed_offset=seed_offset, heartbeat=True)
    evaluator, _ = load_evaluator(settings, device=device)
    store = artifact_store(settings)
    evaluate = SubnetObjective(settings.space, evaluator, settings.objective, settings.aeb, settings.budgets,
                               record_layers=LayerRecorder(store) if store is not None else None)
    study.sampler = OwnerRecordingSampler(study.sampler, {**this_worker(), "device": str(evaluator.device)})
    grace = orphan_grace(settings)

    def objective(trial: optuna.Trial):
        fail_dead_trials(study, orphan_grace=grace)
        return evaluate(trial)

    fail_dead_trials(study, orphan_grace=grace)
    callbacks = []
    remaining = None
    if n_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(n_trials, states=FINISHED))
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        if remaining <= 0:
            return study
    study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks,
                   show_progress_bar=show_progress_bar, gc_after_trial=False)
    return study


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler of a worker: stop with KeyboardInterrupt once, ignore any second one
    (Ctrl-C reaches a worker from the terminal and again from `optimize`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(storage: str, name: str, n_trials: int | None, timeout: float | None, index: int,
                 device: str | None, threads: int, failures: Any, verbose: bool) -> None:
    """A worker process: `run_worker`, its error sent to `failures` as ``(index, line, traceback)``.

    It starts with SIGINT ignored (see `_ignoring_sigint`), so that Ctrl-C while it imports
    prints nothing; from here on Ctrl-C ends it quietly with `EXIT_INTERRUPTED`.
    """
    try:
        signal.signal(signal.SIGINT, _interrupt_once)
        import torch

        quiet_optuna(verbose)
        # Workers sharing a host would oversubscribe its cores with torch's default threads.
        torch.set_num_threads(threads)
        run_worker(storage, name, n_trials=n_trials, timeout=timeout, seed_offset=index, device=device)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:
        line = error_line(err) or f"{type(err).__name__}: {' '.join(str(err).split())}".rstrip(": ")
        failures.put((index, line, traceback.format_exc()))
        sys.exit(1)


@contextlib.contextmanager
def _ignoring_sigint() -> Iterator[None]:
    """Start processes with SIGINT ignored: they inherit it, and Python then raises no
    KeyboardInterrupt in them until they install a handler (`_worker_main` does, first)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _death(proc: multiprocessing.process.BaseProcess) -> str:
    """Why a worker that reported no error ended, from its exit status."""
    code = proc.exitcode
    if code == EXIT_INTERRUPTED:
        return "interrupted (SIGINT)"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}"


def optimize(storage: str, name: str, *, n_trials: int | None, timeout: float | None, workers: int = 1,
             device: str | None = None, devices: Sequence[str] | None = None,
             progress: bool = True, verbose: bool = False) -> OptimizeResult:
    """Run `workers` processes on one study until it holds `n_trials` finished trials (`FINISHED`).

    `n_trials` is the total the study should hold, not a number of trials to add (unlike
    Optuna's ``Study.optimize``): workers on many hosts started with the same number stop
    together, and a run started again after a crash finishes the job. A study that already
    holds `n_trials` starts no worker (`OptimizeResult.nothing_to_do`).

    The study's checkpoint is checked before any worker starts (`builders.check_checkpoint`).
    Every second the parent collects each worker that ended and the errors they report; as
    soon as one died, it fails and re-enqueues the trial it was running. If the study still
    reaches `n_trials`, the run succeeds and `OptimizeResult.failures` names the workers that
    died. Ctrl-C (KeyboardInterrupt) stops every worker: each fails the trial it was running.

    Args:
        storage: Storage URL.
        name: The study.
        n_trials: Finished trials the study should hold in all (None: until `timeout`).
        timeout: Seconds each worker runs at most.
        workers: Worker processes on this host; each gets an equal share of the CPU threads.
        device: Where every worker evaluates.
        devices: Devices dealt out to the workers in turn (worker i gets ``devices[i mod
            len(devices)]``), overriding `device`. With neither, worker i of a host with K
            GPUs gets ``cuda:(i mod K)``; without GPUs, the CPU.
        progress: Show progress: a bar on a terminal, else a line per generation.
        verbose: Let the workers log every trial (Optuna's INFO log) and failed trials'
            tracebacks.

    Returns:
        What the run did: trials before and after, and the workers that died.

    Raises:
        ConfigError: for more workers than this host's cores and memory allow, or a device it
            does not have (before any starts).
        StudyError: for a checkpoint that no longer matches the study (before any worker starts).
        WorkersFailed: if a worker died and the study does not hold `n_trials` finished trials
            (or no `n_trials` was given).
    """
    cores = host_cores()
    limit, reason = worker_limit(cores=cores, available=available_memory())
    if workers > limit:
        raise ConfigError(f"{workers} workers are more than this host can run: at most {limit} ({reason}); "
                          "run more on other hosts against one database storage")
    gpus = gpu_count()
    placement = assign_devices(workers, device=device, devices=devices, gpus=gpus)
    check_devices(sorted({*(devices or ()), *(d for d in placement if d is not None)}), gpus=gpus)
    study, settings = load(storage, name)
    grace = orphan_grace(settings)
    # One storage for the whole poll: on a database each open builds a connection pool.
    store = open_storage(storage)
    study_id = store.get_study_id_from_name(name)

    def finished() -> int:
        return store.get_n_trials(study_id, state=FINISHED)

    def result(**kwargs: Any) -> OptimizeResult:
        return OptimizeResult(complete=store.get_n_trials(study_id, state=TrialState.COMPLETE),
                              finished_before=before, n_trials=n_trials, **kwargs)

    before = finished()
    if n_trials is not None and before >= n_trials:
        return result(workers=0, finished=before)
    check_checkpoint(settings)
    ctx = multiprocessing.get_context("spawn")
    reports = ctx.Queue()
    threads = max(1, cores // workers)
    procs = [ctx.Process(target=_worker_main, args=(storage, name, n_trials, timeout, i, placement[i], threads,
                                                    reports, verbose))
             for i in range(workers)]
    shown = SearchProgress(study, settings, finished=before, n_trials=n_trials, show=progress)
    with _ignoring_sigint():
        for p in procs:
            p.start()
    running = set(range(workers))
    reported: dict[int, tuple[str, str]] = {}
    died: list[int] = []
    try:
        while running:
            time.sleep(1.0)
            _collect(reports, reported)
            # is_alive() collects a worker that ended, so none is left a zombie.
            ended = {i for i in running if not procs[i].is_alive()}
            running -= ended
            newly = sorted(i for i in ended if procs[i].exitcode)
            if newly:
                died += newly
                fail_dead_trials(study, orphan_grace=grace)
            shown.update(finished())
    except KeyboardInterrupt:
        _stop([procs[i] for i in running])
        # Optuna fails the trial a worker was evaluating; one interrupted between trials may leave
        # its new trial RUNNING, with its owner now dead.
        fail_dead_trials(study, orphan_grace=grace)
        raise
    finally:
        for p in procs:
            p.join()
        _collect(reports, reported)
        done = finished()
        shown.close(done)
    failures = tuple(WorkerFailure(i, procs[i].pid, *reported.get(i, (_death(procs[i]), None))) for i in died)
    if failures:
        # A trial whose worker died before recording itself may be past its grace period by now.
        fail_dead_trials(study, orphan_grace=grace)
    outcome = result(workers=workers, failures=failures, finished=done)
    if failures and (n_trials is None or done < n_trials):
        target = f" of {n_trials}" if n_trials is not None else ""
        raise WorkersFailed(f"{len(failures)} of {workers} workers died, and the study holds {done}{target} "
                            f"finished trials; run optimize again to go on\n{failures_summary(failures)}", failures)
    return outcome


def _collect(reports: Any, reported: dict[int, tuple[str, str]]) -> None:
    """Move the errors workers sent into `reported` (worker index -> (line, traceback))."""
    while True:
        try:
            index, line, text = reports.get_nowait()
        except queue.Empty:
            return
        reported[index] = (line, text)


def _stop(procs: Sequence[multiprocessing.process.BaseProcess], *, grace: float = 30.0) -> None:
    """Stop workers after Ctrl-C: SIGINT (each fails its running trial and exits), then after
    `grace` seconds SIGTERM for any still running."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
