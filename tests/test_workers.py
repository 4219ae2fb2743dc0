"""Worker processes and crash recovery, by fault injection: killed workers, dead and orphaned
trials planted in real storages (journal files, PostgreSQL), and too many workers."""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from models import ConfigError
from nas._optuna_private import set_trial_system_attr
from studies import workers
from studies.hosts import assign_devices, check_devices, worker_limit
from studies.recovery import WORKER_ATTR, fail_dead_trials
from studies.storage import open_storage
from tests.conftest import server_answers
from tests.helpers import CLI, ENV, POSTGRES, create_aeb_study, plain_study, run, study_storage

GIB = 2**30


def _dead_pid() -> int:
    """The pid of a process of ours that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _plant_running(study: optuna.Study, space, n: int, owner: dict | None) -> list[int]:
    """Add `n` RUNNING trials of random architectures, as a crash leaves them."""
    rng = random.Random(0)
    first = len(study.get_trials(deepcopy=False))
    for _ in range(n):
        attrs = {WORKER_ATTR: owner} if owner else {}
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.RUNNING, params=space.params_from_config(space.sample(rng)),
            distributions=space.distributions(), system_attrs=attrs))
    return list(range(first, first + n))


def _retries(study: optuna.Study) -> Counter:
    """How many retries each trial got (our sweep's and Optuna's heartbeat retries alike)."""
    return Counter(t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))
                   for t in study.get_trials() if "retry_of" in t.user_attrs or "failed_trial" in t.system_attrs)


def _worker_pids(parent: int) -> list[int]:
    """The multiprocessing workers `parent` started, in the order it started them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.append((int(fields[19]), int(stat.parent.name)))  # (start time, pid)
    return [pid for _, pid in sorted(found)]


def _exists(pid: int) -> bool:
    """Whether `pid` is a process, a zombie included."""
    return Path(f"/proc/{pid}").exists()


# Defect 2: the parent noticed a dead worker only once every worker before it had ended.

@pytest.mark.slow
def test_a_killed_second_worker_is_reaped_and_its_trial_retried_at_once(tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/kill.log"
    # slow trials (many calibration batches, batch size 2) leave time to kill one mid-way
    name = create_aeb_study(storage, digits_checkpoint.path, "--calib-batches", "4", "--eval-batch-size", "2")
    proc = subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", "6",
                             "--workers", "2", "--no-progress"], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        study = plain_study(storage, name)
        genes = digits_checkpoint.space.param_names()
        victim, workers = None, []
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = _worker_pids(proc.pid)
            if len(workers) == 2:
                # Evaluating: all its params written. A worker killed while it writes to the journal
                # holds the journal's lock, which stalls every writer for 30 s (Optuna's grace period).
                victim = next((t.number for t in study.get_trials(states=(TrialState.RUNNING,))
                               if t.system_attrs.get(WORKER_ATTR, {}).get("pid") == workers[1]
                               and len(t.params) == len(genes)), None)
        assert victim is not None, "worker 1 was never seen evaluating a trial"
        os.kill(workers[1], signal.SIGKILL)
        # The parent polls every second; worker 0 may be mid-trial for far longer.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (_retries(study)[victim] and not _exists(workers[1])):
            time.sleep(0.1)
        assert not _exists(workers[1]), "the killed worker was left a zombie"
        assert study.get_trials()[victim].state == TrialState.FAIL and _retries(study)[victim] == 1
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The study reached its trials: success, with one line saying what was lost on the way.
    assert proc.returncode == 0, err
    assert err == ("autospk-study: warning: 1 worker of 2 died (a worker killed by a signal is replaced); their "
                   "running trials were failed and retried, an architecture that kept killing its worker given up "
                   f"on (show lists it)\n  worker 1 (pid {workers[1]}): killed by SIGKILL\n")
    assert f"study '{name}': " in out
    trials = study.get_trials()
    retries = _retries(study)
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 6
    assert all(t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and retries[t.number] == 1)
               for t in trials), [(t.number, t.state.name) for t in trials]


# Defect 3: workers recovering the same dead trials at once.

@pytest.mark.parametrize("backend", ["journal", "postgresql"])
@pytest.mark.slow
def test_two_workers_recover_thirty_dead_trials_once_each(tmp_path, digits_checkpoint, backend):
    storage = study_storage(backend, tmp_path)
    name = create_aeb_study(storage, digits_checkpoint.path)
    study = plain_study(storage, name)
    planted = _plant_running(study, digits_checkpoint.space, 30, {"host": socket.gethostname(), "pid": _dead_pid()})
    if backend == "postgresql":
        # A crash on a database leaves heartbeats too: Optuna's stale-trial recovery joins in.
        beat = open_storage(storage, heartbeat_interval=1)
        for number in planted:
            beat.record_heartbeat(study.get_trials(deepcopy=False)[number]._trial_id)
    proc = run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "3", "--workers", "2",
               "--no-progress", check=False)
    assert proc.returncode == 0 and "died" not in proc.stderr, proc.stderr
    trials = study.get_trials()
    retries = _retries(study)
    assert all(trials[n].state == TrialState.FAIL and retries[n] == 1 for n in planted), retries
    assert not study.get_trials(states=(TrialState.RUNNING,))


def _sweep_at_once(storage: str, name: str, barrier, results) -> None:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    barrier.wait()
    results.put(fail_dead_trials(study, orphan_grace=60.0))


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
@pytest.mark.slow
def test_sweeps_racing_on_the_same_dead_trials_fail_and_retry_each_once(tmp_path, digits_checkpoint, backend):
    storage = study_storage(backend, tmp_path)
    name = create_aeb_study(storage, digits_checkpoint.path)
    study = plain_study(storage, name)
    _plant_running(study, digits_checkpoint.space, 100, {"host": socket.gethostname(), "pid": _dead_pid()})
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_sweep_at_once, args=(storage, name, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    failed = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sorted(n for numbers in failed for n in numbers) == list(range(100))
    assert _retries(study) == Counter(range(100))


@pytest.mark.slow
def test_a_heartbeat_retry_is_ours_and_a_live_worker_keeps_it(digits_checkpoint):
    if not server_answers(POSTGRES):
        pytest.fail(f"no PostgreSQL server answers at {POSTGRES}")
    # A long heartbeat: the retry below is taken as an orphan only after 3 minutes.
    name = create_aeb_study(POSTGRES, digits_checkpoint.path, heartbeat=60)
    study = plain_study(POSTGRES, name)
    dead = _plant_running(study, digits_checkpoint.space, 1, None)[0]
    owner = {"host": "elsewhere", "pid": 4242, "trial": dead}
    trial = study.get_trials(deepcopy=False)[dead]
    set_trial_system_attr(study, trial, WORKER_ATTR, owner)
    beat = open_storage(POSTGRES, heartbeat_interval=1, grace_period=1)
    beat.record_heartbeat(trial._trial_id)
    time.sleep(1.5)
    # Optuna's heartbeat recovery fails the trial; the retry is ours: the dead trial's genome and
    # claim, no copy of its owner, the cause recorded.
    optuna.storages.fail_stale_trials(optuna.load_study(study_name=name, storage=beat))
    retry = study.ask()
    frozen = study.get_trials()[retry.number]
    assert WORKER_ATTR not in frozen.system_attrs
    assert frozen.system_attrs["fixed_params"] == trial.params
    assert frozen.user_attrs["retry_of"] == dead and frozen.user_attrs["attempt"] == 2
    assert frozen.user_attrs["retry_cause"] == "no heartbeat for 1 s (its worker on elsewhere stopped)"
    run("optimize", "--storage", POSTGRES, "--study-name", name, "--n-trials", "1", "--no-progress")
    assert study.get_trials()[retry.number].state == TrialState.RUNNING, "another worker failed a live trial"
    study.tell(retry, 0.5)
    assert _retries(study) == Counter([dead])


# Defect 7: --workers had no upper bound.

@pytest.mark.slow
def test_too_many_workers_are_refused_before_any_starts(tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/many.log"
    name = create_aeb_study(storage, digits_checkpoint.path)
    cores = len(os.sched_getaffinity(0))
    for asked in (cores + 1, 64):
        proc = run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "2", "--workers",
                   str(asked), "--no-progress", check=False)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert re.search(rf"{asked} workers are more than this host can run: at most \d+", proc.stderr)
        assert f"(its {cores} CPU cores)" in proc.stderr or "GiB available memory" in proc.stderr
        assert not plain_study(storage, name).get_trials(), "a worker started"


def test_worker_limit_names_what_limits_it():
    assert worker_limit(cores=2, available=64 * GIB) == (2, "its 2 CPU cores")
    limit, reason = worker_limit(cores=32, available=int(3.5 * GIB))
    assert limit == 3 and "3.5 GiB available memory" in reason and "per worker" in reason
    assert worker_limit(cores=8, available=None) == (8, "its 8 CPU cores")
    assert worker_limit(cores=8, available=GIB // 4)[0] == 1, "one worker is always allowed"


def test_workers_are_dealt_the_gpus_of_their_host_in_turn():
    assert assign_devices(5, gpus=3) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert assign_devices(3, devices=["cuda:2", "cuda:0"], device="cpu", gpus=4) == ["cuda:2", "cuda:0", "cuda:2"]
    assert assign_devices(2, device="cuda:1", gpus=4) == ["cuda:1", "cuda:1"]
    assert assign_devices(2, gpus=0) == [None, None]
    check_devices(["cpu", "cuda:0", "cuda:3"], gpus=4)
    with pytest.raises(ConfigError, match=r"device 'cuda:2' does not exist: this host has 2 GPUs \(cuda:0 to cuda:1\)"):
        check_devices(["cuda:0", "cuda:2"], gpus=2)
    with pytest.raises(ConfigError, match="device 'cuda' does not exist: this host has 0 GPUs"):
        check_devices(["cuda"], gpus=0)
    with pytest.raises(ConfigError, match="device 'gpu0' is not a torch device"):
        check_devices(["gpu0"], gpus=1)


class _RecordedProcess:
    """Stands in for a worker process: records its arguments and ends at once."""

    started: list[tuple] = []

    def __init__(self, target, args):
        self.args, self.pid, self.exitcode = args, 0, 0

    def start(self):
        _RecordedProcess.started.append(self.args)

    def is_alive(self):
        return False

    def join(self):
        pass


@pytest.mark.parametrize("gpus, devices, expected", [
    (3, None, ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]),
    (4, ["cuda:3", "cuda:1"], ["cuda:3", "cuda:1", "cuda:3", "cuda:1"]),
])
def test_optimize_gives_worker_i_its_device_on_a_host_with_several_gpus(tmp_path, digits_checkpoint, monkeypatch,
                                                                       gpus, devices, expected):
    storage = f"journal://{tmp_path}/gpus.log"
    name = create_aeb_study(storage, digits_checkpoint.path)
    monkeypatch.setattr(workers, "gpu_count", lambda: gpus)
    monkeypatch.setattr(workers, "host_cores", lambda: 8)
    monkeypatch.setattr(workers, "available_memory", lambda: None)
    monkeypatch.setattr(workers.multiprocessing, "get_context", lambda method: type("Ctx", (), {
        "Process": staticmethod(lambda target, args: _RecordedProcess(target, args)), "Queue": queue.Queue}))
    checked = []
    monkeypatch.setattr(workers, "check_gpu_workers", lambda ctx, settings, placement: checked.append(placement))
    _RecordedProcess.started = []
    workers.optimize(storage, name, n_trials=None, timeout=1, workers=4, devices=devices, progress=False)
    # _worker_main(storage, name, n_trials, timeout, index, device, threads, failures, verbose, parent)
    assert [(a[4], a[5], a[6]) for a in _RecordedProcess.started] == [(i, d, 2) for i, d in enumerate(expected)]
    assert checked == [expected]  # the GPU memory check saw every worker's device (tests/test_faults.py)


def test_a_device_the_host_lacks_is_refused_before_any_worker_starts(tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/nogpu.log"
    name = create_aeb_study(storage, digits_checkpoint.path)
    proc = run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "2", "--devices", "cpu,cuda:7",
               "--no-progress", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "device 'cuda:7' does not exist: this host has" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not plain_study(storage, name).get_trials(), "a worker started"


# Defect 12: a worker killed between creating its trial and writing its owner.

@pytest.mark.parametrize("backend", ["journal", "postgresql"])
@pytest.mark.slow
def test_a_trial_left_running_without_owner_is_recovered_after_the_grace_period(tmp_path, digits_checkpoint,
                                                                               backend):
    storage = study_storage(backend, tmp_path)
    name = create_aeb_study(storage, digits_checkpoint.path)
    study = plain_study(storage, name)
    orphan = study.ask().number  # as if its worker died right after creating it
    time.sleep(3.5)  # the grace period: 3 heartbeats of 1 s
    run("optimize", "--storage", storage, "--study-name", name, "--n-trials", "1", "--no-progress")
    assert study.get_trials()[orphan].state == TrialState.FAIL
    # No architecture had been chosen for it: nothing to retry, and nothing lost.
    assert _retries(study) == Counter()
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1
