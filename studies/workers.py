"""Running a study: worker processes, crash recovery and progress.

`run_worker` runs trials in this process; `optimize` starts several worker processes on
this host and follows their progress. Workers on other hosts run `run_worker` (through
``autospk-study optimize``) against the same database storage.

Crash recovery: a worker records itself on each trial (`WORKER_ATTR`) before its sampler
proposes anything. `fail_dead_trials` fails and re-enqueues the RUNNING trials whose worker
on this host has ended, and those without an owner of their own once they are older than
a grace period; every worker runs it before each trial, and `optimize` as soon as one of
its workers dies. Database heartbeats recover the trials of workers on other hosts.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from models import ConfigError

from .errors import StudyError
from .layers import LayerRecorder, artifact_store
from .storage import open_storage
from .study import load, load_evaluator

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from .settings import StudySettings

WORKER_ATTR = "autospk:worker"
"""Trial system attr: the worker running the trial, ``{"host", "pid", "started", "trial", "device"}``.

``started`` is the process's start time in clock ticks since boot (None without /proc), so
that a new process reusing the pid is not taken for the worker; ``trial`` is the number of
the trial the record was written for, so that a retry carrying a copy of its predecessor's
system attrs (Optuna's heartbeat retries copy them all) is not taken for a dead worker's.
"""

ORPHAN_HEARTBEATS = 3
"""A RUNNING trial without an owner of its own is orphaned after this many heartbeat intervals."""

WORKER_MEMORY_GIB = 1.0
"""Memory one worker process needs. A digits worker peaked at 1.03 GiB resident, 0.70 GiB of it
private (the rest is shared library pages); larger data sets and CUDA need more."""

_PROC = Path("/proc")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""The trials `n_trials` counts: scored in full, or rejected early (PRUNED, see
`nas.EvaluationSettings.early_rejection`). A rejected trial spent part of an evaluation; and
counting complete trials only could run forever once every new subnet gets rejected."""


@dataclass(frozen=True)
class OptimizeResult:
    """What `optimize` did.

    Attributes:
        complete: Complete trials the study holds at the end (trials rejected early not counted).
        workers: Worker processes started.
        lost: One entry per worker that died, e.g. ``"worker 1, pid 4242: killed by SIGKILL"``.
    """

    complete: int
    workers: int
    lost: tuple[str, ...] = ()

    @property
    def lost_summary(self) -> str:
        """One line on the workers that died and what became of their trials."""
        return (f"{len(self.lost)} of {self.workers} workers died ({'; '.join(self.lost)}); "
                "their running trials were failed and re-enqueued")


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time (clock ticks since boot) of process `pid` from /proc,
    or None where /proc has no record of it."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _this_worker() -> dict[str, Any]:
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "started": stat[1] if stat else None}


def _alive(owner: Mapping[str, Any]) -> bool:
    """Whether the process an owner record names, on this host, still runs.

    A zombie has ended (its parent has not yet collected it), and a process with the pid
    but another start time is a new one that reuses the pid.
    """
    pid = owner["pid"]
    stat = _proc_stat(pid)
    if stat is None:
        # No /proc (not Linux), or one that hides other users' processes: ask the kernel.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    state, started = stat
    return state not in ("Z", "X") and owner.get("started") in (None, started)


def _owner(trial: FrozenTrial) -> Mapping[str, Any] | None:
    """The trial's owner record, if one was written for this trial."""
    owner = trial.system_attrs.get(WORKER_ATTR)
    if not isinstance(owner, Mapping) or not isinstance(owner.get("pid"), int) or owner["pid"] <= 0:
        return None
    # Records written before the trial number was recorded count as the trial's own.
    return owner if owner.get("trial", trial.number) == trial.number else None


def fail_dead_trials(study: optuna.Study, *, orphan_grace: float) -> list[int]:
    """Fail and re-enqueue (user attr ``retry_of``) the RUNNING trials whose worker died.

    A trial's worker died when its owner record names this host and a process that has
    ended, or when the trial has no owner record of its own and started more than
    `orphan_grace` seconds ago: its worker died between creating it and recording itself
    (a live worker records itself one storage read after the trial starts). Trials of
    workers on other hosts are left to database heartbeats. Start times are compared on
    this host's clock, so hosts sharing a storage need clocks closer than `orphan_grace`.

    Many processes may recover the same trials at once: only the one whose FAIL lands
    re-enqueues a trial, so each is retried once.

    Args:
        study: The study.
        orphan_grace: Seconds a RUNNING trial may go without an owner.

    Returns:
        The numbers of the trials failed here.
    """
    from nas._optuna_private import fail_running_trial
    from nas.dedup import StudyIndex

    host = socket.gethostname()
    # Every storage returns datetime_start as naive local time.
    orphaned_before = datetime.now() - timedelta(seconds=orphan_grace)
    failed = []
    index = StudyIndex.of(study)
    index.refresh(study)
    for t in [t for t in index.live if t.state == TrialState.RUNNING]:
        owner = _owner(t)
        if owner is None:
            dead = t.datetime_start is not None and t.datetime_start < orphaned_before
        else:
            dead = owner.get("host") == host and not _alive(owner)
        if dead and fail_running_trial(study, t):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            failed.append(t.number)
    return failed


def _orphan_grace(settings: StudySettings) -> float:
    return ORPHAN_HEARTBEATS * settings.heartbeat_interval


class _OwnerRecordingSampler(BaseSampler):
    """A study's sampler that first records, on each trial, the worker running it.

    `before_trial` is the first of our code that Optuna runs on a trial it has just created
    or taken from the queue, before the sampler proposes (which reads the whole study);
    so a trial goes without its owner for one storage read only.

    Args:
        sampler: The study's sampler; everything else is left to it.
        worker: This process's owner record (without the trial number).
    """

    def __init__(self, sampler: BaseSampler, worker: Mapping[str, Any]) -> None:
        self.sampler = sampler
        self.worker = dict(worker)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from nas._optuna_private import set_trial_system_attr

        set_trial_system_attr(study, trial, WORKER_ATTR, {**self.worker, "trial": trial.number})
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


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
    study.sampler = _OwnerRecordingSampler(study.sampler, {**_this_worker(), "device": str(evaluator.device)})
    grace = _orphan_grace(settings)

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


def _worker_main(storage: str, name: str, n_trials: int | None, timeout: float | None, index: int,
                 device: str | None, threads: int) -> None:
    import torch

    quiet_optuna()
    # Workers sharing a host would oversubscribe its cores with torch's default threads.
    torch.set_num_threads(threads)
    run_worker(storage, name, n_trials=n_trials, timeout=timeout, seed_offset=index, device=device)


def _cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _available_memory() -> int | None:
    """Bytes of memory new processes can use without swapping, or None if unknown."""
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        # Free pages only (reclaimable caches not counted): an underestimate.
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def worker_limit(*, cores: int, available: int | None) -> tuple[int, str]:
    """The most worker processes a host can run, and what limits it.

    Each worker needs a core (torch's threads are shared out among the workers) and about
    `WORKER_MEMORY_GIB` of memory; one worker is always allowed.

    Args:
        cores: CPU cores this process may run on.
        available: Bytes of memory available (None: unknown, so no limit).

    Returns:
        ``(limit, reason)``, e.g. ``(2, "its 2 CPU cores")``.
    """
    limit, reason = cores, f"its {cores} CPU cores"
    if available is not None:
        by_memory = int(available / (WORKER_MEMORY_GIB * 2**30))
        if by_memory < limit:
            limit = by_memory
            reason = f"{available / 2**30:.1f} GiB available memory at ~{WORKER_MEMORY_GIB:g} GiB per worker"
    return max(1, limit), reason


def assign_devices(workers: int, *, device: str | None = None, devices: Sequence[str] | None = None,
                   gpus: int = 0) -> list[str | None]:
    """The device of each worker on a host: worker i gets ``devices[i mod len(devices)]``.

    Args:
        workers: Worker processes.
        device: One device for every worker (ignored when `devices` is given).
        devices: Devices to deal out in turn, e.g. ``["cuda:0", "cuda:1"]``.
        gpus: GPUs on the host, dealt out in turn when neither `device` nor `devices` is
            given (``cuda:0``, ``cuda:1``, ...); with none, every worker takes the default.

    Returns:
        One device per worker (None: the default, the GPU if any, else the CPU).
    """
    if devices:
        return [devices[i % len(devices)] for i in range(workers)]
    if device is not None:
        return [device] * workers
    if gpus > 0:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [None] * workers


def check_devices(devices: Sequence[str], *, gpus: int) -> None:
    """Refuse device names torch does not know and GPUs this host does not have.

    Raises:
        ConfigError: naming the device and what this host has.
    """
    import torch

    have = f"this host has {gpus} GPU{'s' if gpus != 1 else ''}" + (
        f" (cuda:0 to cuda:{gpus - 1})" if gpus > 1 else " (cuda:0)" if gpus == 1 else "")
    for name in devices:
        try:
            dev = torch.device(name)
        except (RuntimeError, ValueError) as err:
            raise ConfigError(f"device '{name}' is not a torch device ({err}); use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and (dev.index or 0) >= gpus:
            raise ConfigError(f"device '{name}' does not exist: {have}")


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _death(index: int, proc: multiprocessing.process.BaseProcess) -> str:
    code = proc.exitcode
    if code > 0:
        return f"worker {index}, pid {proc.pid}: exited with status {code}, see its messages above"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"worker {index}, pid {proc.pid}: killed by {name}"


def optimize(storage: str, name: str, *, n_trials: int | None, timeout: float | None, workers: int = 1,
             device: str | None = None, devices: Sequence[str] | None = None,
             progress: bool = True) -> OptimizeResult:
    """Run `workers` processes on one study until it holds `n_trials` finished trials (`FINISHED`).

    Every second the parent collects each worker that ended; as soon as one died, it fails
    and re-enqueues the trial it was running. If the study still reaches `n_trials`, the
    run succeeds and `OptimizeResult.lost` names the workers that died.

    Args:
        storage: Storage URL.
        name: The study.
        n_trials: Complete trials the study should hold (None: until `timeout`).
        timeout: Seconds each worker runs at most.
        workers: Worker processes on this host; each gets an equal share of the CPU threads.
        device: Where every worker evaluates.
        devices: Devices dealt out to the workers in turn (worker i gets ``devices[i mod
            len(devices)]``), overriding `device`. With neither, worker i of a host with K
            GPUs gets ``cuda:(i mod K)``; without GPUs, the CPU.
        progress: Show a progress bar of finished trials.

    Returns:
        The complete trials at the end, and the workers that died.

    Raises:
        ConfigError: for more workers than this host's cores and memory allow, or a device it
            does not have (before any starts).
        StudyError: if a worker died and the study does not hold `n_trials` finished trials
            (or no `n_trials` was given).
    """
    cores = _cores()
    limit, reason = worker_limit(cores=cores, available=_available_memory())
    if workers > limit:
        raise ConfigError(f"{workers} workers are more than this host can run: at most {limit} ({reason}); "
                          "run more on other hosts against one database storage")
    gpus = _gpu_count()
    placement = assign_devices(workers, device=device, devices=devices, gpus=gpus)
    check_devices(sorted({*(devices or ()), *(d for d in placement if d is not None)}), gpus=gpus)
    study, settings = load(storage, name)
    grace = _orphan_grace(settings)
    # One storage for the whole poll: on a database each open builds a connection pool.
    store = open_storage(storage)
    study_id = store.get_study_id_from_name(name)

    def finished() -> int:
        return store.get_n_trials(study_id, state=FINISHED)

    bar = tqdm(total=n_trials, initial=min(finished(), n_trials or 0), desc=name, unit="trial",
               disable=not progress, dynamic_ncols=True)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, cores // workers)
    procs = [ctx.Process(target=_worker_main, args=(storage, name, n_trials, timeout, i, placement[i], threads))
             for i in range(workers)]
    for p in procs:
        p.start()
    running = set(range(workers))
    lost: list[str] = []
    try:
        while running:
            time.sleep(1.0)
            # is_alive() collects a worker that ended, so none is left a zombie.
            ended = {i for i in running if not procs[i].is_alive()}
            running -= ended
            died = sorted(i for i in ended if procs[i].exitcode)
            if died:
                lost += [_death(i, procs[i]) for i in died]
                fail_dead_trials(study, orphan_grace=grace)
            bar.n = min(finished(), bar.total or 10**9)
            bar.refresh()
    finally:
        for p in procs:
            p.join()
        done = finished()
        bar.n = min(done, bar.total or 10**9)
        bar.close()
    if lost:
        # A trial whose worker died before recording itself may be past its grace period by now.
        fail_dead_trials(study, orphan_grace=grace)
    result = OptimizeResult(store.get_n_trials(study_id, state=TrialState.COMPLETE), workers, tuple(lost))
    if lost and (n_trials is None or done < n_trials):
        target = f" of {n_trials}" if n_trials is not None else ""
        raise StudyError(f"{result.lost_summary}; the study holds {done}{target} finished trials; "
                         "run optimize again to go on")
    return result
