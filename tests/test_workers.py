"""Worker processes and crash recovery, by fault injection: killed workers, dead and orphaned
trials planted in real storages (journal files, PostgreSQL), and too many workers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from studies.cli import main
from studies.storage import open_storage
from studies.workers import WORKER_ATTR
from tests.test_cli import CLI, ENV


def _create(storage: str, checkpoint: Path, *extra: str) -> str:
    """A fresh aeb study whose heartbeat (and so orphan grace period, 3 heartbeats) is short."""
    name = f"w-{uuid.uuid4().hex[:8]}"
    assert main(["create", "--storage", storage, "--study-name", name, "--objective", "aeb", "--checkpoint",
                 str(checkpoint), "--population-size", "4", "--num-parents", "2", "--no-enqueue-largest",
                 "--heartbeat-interval", "1", *extra]) == 0
    return name


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


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

def test_a_killed_second_worker_is_reaped_and_its_trial_retried_at_once(tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/kill.log"
    # slow trials (many calibration batches, batch size 2) leave time to kill one mid-way
    name = _create(storage, digits_checkpoint.path, "--calib-batches", "4", "--eval-batch-size", "2")
    proc = subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", "6",
                             "--workers", "2", "--no-progress"], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        study = _study(storage, name)
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
    assert f"warning: 1 of 2 workers died (worker 1, pid {workers[1]}: killed by SIGKILL)" in err
    assert f"study '{name}': " in out
    trials = study.get_trials()
    retries = _retries(study)
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 6
    assert all(t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and retries[t.number] == 1)
               for t in trials), [(t.number, t.state.name) for t in trials]


