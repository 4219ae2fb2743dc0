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
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from models import ConfigError

from .builders import check_checkpoint, load_evaluator
from .errors import error_line
from .hosts import (
    assign_devices,
    available_memory,
    check_devices,
    check_gpu_workers,
    gpu_count,
    host_cores,
    oom_kills,
    worker_limit,
)
from .layer_artifacts import LayerRecorder, artifact_store
from .optuna_log import quiet_optuna
from .outcomes import OptimizeResult, WorkerFailure, WorkersFailed, failures_summary
from .progress import SearchProgress
from .recovery import (
    INTERRUPTED,
    OwnerRecordingSampler,
    fail_dead_trials,
    orphan_grace,
    requeue_interrupted,
    this_worker,
)
from .storage import open_storage
from .study import load

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""The trials `n_trials` counts: scored in full, or rejected early (PRUNED, see
`nas.EvaluationSettings.early_rejection`). A rejected trial spent part of an evaluation; and
counting complete trials only could run forever once every new subnet gets rejected."""


EXIT_INTERRUPTED = 130
"""Exit status of a worker stopped by Ctrl-C (SIGINT), as a shell reports it."""


def run_worker(
    storage: str,
    study_name: str,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed_offset: int = 0,
    device: str | None = None,
    show_progress_bar: bool = False,
    parent: Mapping[str, Any] | None = None,
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
        parent: The identity of the `optimize` that started this worker (recorded on its
            trials, so that other workers leave its dead trials to it).

    Ctrl-C (KeyboardInterrupt) fails the trial running here, as Optuna does, and enqueues its
    architecture again first (`studies.recovery.requeue_interrupted`), not counted as a try.
    """
    from nas.objective import SubnetObjective

    study, settings = load(storage, study_name, seed_offset=seed_offset, heartbeat=True)
    evaluator, _ = load_evaluator(settings, device=device)
    store = artifact_store(settings)
    evaluate = SubnetObjective(settings.space, evaluator, settings.objective, settings.aeb, settings.budgets,
                               record_layers=LayerRecorder(store) if store is not None else None)
    owner = {**this_worker(), "device": str(evaluator.device)}
    if parent is not None:
        owner["parent"] = dict(parent)
    study.sampler = OwnerRecordingSampler(study.sampler, owner)
    grace = orphan_grace(settings)
    running: dict[str, int] = {}

    def objective(trial: optuna.Trial):
        running["trial"] = trial.number  # kept only if Ctrl-C stops the trial
        try:
            fail_dead_trials(study, orphan_grace=grace, settings=settings)
            result = evaluate(trial)
        except Exception:
            running.pop("trial", None)
            raise
        running.pop("trial", None)
        return result

    fail_dead_trials(study, orphan_grace=grace, settings=settings)
    callbacks = []
    remaining = None
    if n_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(n_trials, states=FINISHED))
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=FINISHED))
        if remaining <= 0:
            return study
    try:
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks,
                       show_progress_bar=show_progress_bar, gc_after_trial=False)
    except KeyboardInterrupt:
        requeue_interrupted(study, settings, running.get("trial"))
        raise
    return study


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler of a worker: stop with KeyboardInterrupt once, ignore any second one
    (Ctrl-C reaches a worker from the terminal and again from `optimize`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(storage: str, name: str, n_trials: int | None, timeout: float | None, index: int,
                 device: str | None, threads: int, failures: Any, verbose: bool, parent: Mapping[str, Any]) -> None:
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
        run_worker(storage, name, n_trials=n_trials, timeout=timeout, seed_offset=index, device=device, parent=parent)
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


def _death(proc: multiprocessing.process.BaseProcess, *, oom: bool = False) -> str:
    """Why a worker that reported no error ended, from its exit status (and whether the
    kernel's OOM killer struck in this host's memory cgroup meanwhile)."""
    code = proc.exitcode
    if code == EXIT_INTERRUPTED:
        return "interrupted (SIGINT)"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if oom and code == -signal.SIGKILL:
        return f"killed by {name} (out of memory: the kernel's OOM killer)"
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
    soon as one died, it fails the trial it was running, with the cause (the signal, and "out
    of memory" where this host's memory cgroup counted an OOM kill), and retries it or gives
    its architecture up (`studies.recovery.retry_dead_trial`). A worker killed by a signal is
    replaced while the study needs trials (until ``workers x (max_retries + 1)`` deaths follow
    one another without a finished trial). If the study still reaches `n_trials`, the run
    succeeds and `OptimizeResult.failures` names the workers that died. Ctrl-C
    (KeyboardInterrupt) stops every worker: each fails the trial it was running and enqueues
    it again, to be evaluated first by the next run.

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
    check_gpu_workers(ctx, settings, placement)
    reports = ctx.Queue()
    threads = max(1, cores // workers)
    supervisor = this_worker()

    def start(i: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker_main, args=(storage, name, n_trials, timeout, i, placement[i], threads,
                                                      reports, verbose, supervisor))
        with _ignoring_sigint():
            proc.start()
        return proc

    shown = SearchProgress(study, settings, finished=before, n_trials=n_trials, show=progress)
    procs = [start(i) for i in range(workers)]
    running = set(range(workers))
    reported: dict[int, tuple[str, str]] = {}
    failures: list[WorkerFailure] = []
    # A worker killed by a signal is replaced while the study needs trials; a subnet that kills
    # every worker is given up on after 1 + max_retries tries, so deaths without progress stop.
    budget = workers * (settings.max_retries + 1)
    deaths_since_progress, last_done = 0, before
    ooms = oom_kills()
    try:
        while running:
            time.sleep(1.0)
            _collect(reports, reported)
            # is_alive() collects a worker that ended, so none is left a zombie.
            ended = sorted(i for i in running if not procs[i].is_alive())
            running -= set(ended)
            died = [i for i in ended if procs[i].exitcode]
            done = finished()
            if done > last_done:
                deaths_since_progress, last_done = 0, done
            if died:
                now = oom_kills()
                causes = {}
                for i in died:
                    line, text = reported.pop(i, (None, None))
                    cause = line or _death(procs[i], oom=now is not None and ooms is not None and now > ooms)
                    causes[procs[i].pid] = INTERRUPTED if procs[i].exitcode == EXIT_INTERRUPTED else cause
                    failures.append(WorkerFailure(i, procs[i].pid, cause, text))
                ooms = now
                fail_dead_trials(study, orphan_grace=grace, settings=settings, causes=causes, supervisor=True)
                deaths_since_progress += len(died)
                needed = n_trials is None or finished() < n_trials
                for i in died:
                    if procs[i].exitcode < 0 and needed and deaths_since_progress <= budget:
                        procs[i] = start(i)
                        running.add(i)
            shown.update(finished())
    except KeyboardInterrupt:
        _stop([procs[i] for i in running])
        # Each worker fails and enqueues again the trial it was evaluating; one interrupted between
        # trials may leave its new trial RUNNING, with its owner now dead.
        fail_dead_trials(study, orphan_grace=grace, settings=settings,
                         causes={procs[i].pid: INTERRUPTED for i in running}, supervisor=True)
        raise
    finally:
        for p in procs:
            p.join()
        _collect(reports, reported)
        done = finished()
        shown.close(done)
    if failures:
        # A trial whose worker died before recording itself may be past its grace period by now.
        fail_dead_trials(study, orphan_grace=grace, settings=settings, supervisor=True)
    outcome = result(workers=workers, failures=tuple(failures), finished=done)
    if failures and (n_trials is None or done < n_trials):
        target = f" of {n_trials}" if n_trials is not None else ""
        deaths = (f"{len(failures)} of {workers} workers died" if len(failures) <= workers
                  else f"workers died {len(failures)} times")
        raise WorkersFailed(f"{deaths}, and the study holds {done}{target} finished trials; run optimize again to go "
                            f"on\n{failures_summary(failures)}", failures)
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
