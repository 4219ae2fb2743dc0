"""Fault injection with real processes, real signals and the machine's real databases.

Each test is one fault of the kind a long search meets: a writer killed inside the journal's
lock, workers killed mid-trial (with part of their parameters written), a subnet that kills
every worker that evaluates it, Ctrl-C, two `create`s racing, two studies with different
heartbeats in one process, a host with less memory than it seems, an edited training image,
and a study written by a newer autospk.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.study_index import ARCH_ATTR, ARCH_KEY
from studies.cli import main
from studies.errors import StorageWarning
from studies.storage import open_storage
from tests import fault_worker
from tests.conftest import server_answers
from tests.helpers import CLI, ENV, POSTGRES, create_aeb_study, plain_study, study_storage

ROOT = Path(__file__).resolve().parent.parent
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _fault_worker(storage: str, name: str, n_trials: int, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.fault_worker", storage, name, str(n_trials), str(log),
                             *extra], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _hooked_env(tmp_path: Path, log: Path, pause: float = 0.0, poison: str = "") -> dict[str, str]:
    """The environment of a CLI process whose every Python process (optimize's workers too) runs
    with the fault hooks."""
    site = fault_worker.sitecustomize_dir(tmp_path / "site")
    return {**ENV, fault_worker.HOOKS_ENV: f"{log},{pause},{poison}",
            "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _arch(space, trial) -> str:
    return space.config_from_params(trial.params).arch_id


# 1. A worker killed while it holds the journal's lock.

_HOLD_THE_LOCK = textwrap.dedent("""
    import os, sys, time
    import optuna
    from studies.storage import open_storage
    study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]))

    def stall(fd):  # inside the journal's lock, between the write and its fsync
        print("inside", flush=True)
        time.sleep(600)

    os.fsync = stall
    study.ask()
""")


@pytest.mark.slow
def test_a_writer_killed_inside_the_journal_lock_holds_up_the_next_write_under_2_s(tmp_path):
    storage = f"journal://{tmp_path}/lock.log"
    study = optuna.create_study(study_name="s", storage=open_storage(storage))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_LOCK, storage], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline().strip()
        assert line == "inside", holder.stderr.read() if holder.poll() is not None else line
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert Path(f"{tmp_path}/lock.log.lock").exists() or Path(f"{tmp_path}/lock.log.lock").is_symlink()
        start = time.monotonic()
        with pytest.warns(StorageWarning, match=rf"broke the lock of pid {holder.pid} on .*, which has ended"):
            study.ask()
        waited = time.monotonic() - start
    finally:
        if holder.poll() is None:
            holder.kill()
    assert waited < 2.0, f"the next write waited {waited:.1f} s for the dead writer's lock"


# 2. Retries evaluate what their dead predecessor claimed.

def _kill_and_replace(procs: list[subprocess.Popen], start, kills: int, every: float, study: optuna.Study) -> int:
    """Every `every` seconds SIGKILL a worker in the middle of a trial (one whose pid owns a
    RUNNING trial) and start a replacement, `kills` times."""
    from studies.recovery import WORKER_ATTR

    rng = random.Random(0)
    done = 0
    while done < kills:
        time.sleep(every)
        deadline = time.monotonic() + 60
        busy: list[int] = []
        while not busy and time.monotonic() < deadline:
            owners = {t.system_attrs.get(WORKER_ATTR, {}).get("pid")
                      for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            busy = [i for i, p in enumerate(procs) if p.poll() is None and p.pid in owners]
            time.sleep(0.05)
        if not busy:
            break
        i = rng.choice(busy)
        os.kill(procs[i].pid, signal.SIGKILL)
        procs[i].wait()
        procs[i] = start(i)
        done += 1
    return done


def _check_claims(study: optuna.Study, space) -> None:
    """Every complete trial evaluated the architecture it claimed; every claim was evaluated."""
    trials = study.get_trials()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert _arch(space, t) == t.user_attrs[ARCH_ATTR] == t.system_attrs.get(ARCH_KEY), \
                f"trial {t.number} evaluated {_arch(space, t)} under the claim {t.system_attrs.get(ARCH_KEY)}"
    evaluated = {t.user_attrs[ARCH_ATTR] for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    claimed = {t.system_attrs[ARCH_KEY] for t in trials if ARCH_KEY in t.system_attrs}
    given_up = {t.system_attrs[ARCH_KEY] for t in trials if "gave_up" in t.user_attrs}
    lost = claimed - evaluated - given_up
    detail = [(t.number, t.state.name, len(t.params), dict(t.user_attrs), t.system_attrs.get("autospk:died"))
              for t in trials if t.system_attrs.get(ARCH_KEY) in lost]
    assert not lost, f"claimed but never evaluated: {sorted(lost)}: {detail}"


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
@pytest.mark.slow
def test_retries_evaluate_and_claim_the_architecture_of_the_trial_that_died(tmp_path, digits_checkpoint, backend):
    storage = study_storage(backend, tmp_path)
    # Kills pick a worker in mid-trial, often the one retrying the last victim: enough retries
    # that no architecture is given up on here (tests/test_faults.py::test_a_poison_... does that).
    name = create_aeb_study(storage, digits_checkpoint.path, "--max-retries", "10")
    log = tmp_path / "tries.log"
    # On PostgreSQL the killed workers pose as another host's: their trials come back through
    # database heartbeats. On the journal they are this host's: the sweep sees them die.
    host = ["--host", "elsewhere"] if backend == "postgresql" else []

    def start(i: int) -> subprocess.Popen:
        return _fault_worker(storage, name, 14, log, "--pause", "0.15", *(host if i == 0 else []))

    procs = [start(0), start(1)]
    try:
        kills = _kill_and_replace(procs, start, kills=5, every=2.5 if backend == "journal" else 4.0,
                                  study=plain_study(storage, name))
        for p in procs:
            p.wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert kills == 5
    from studies.workers import run_worker

    run_worker(storage, name, n_trials=14, device="cpu")  # what any worker left undone
    study = plain_study(storage, name)
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    genes = len(digits_checkpoint.space.param_names())
    died = [t for t in trials if t.state == TrialState.FAIL]
    assert died and any(len(t.params) < genes for t in died), "no worker was killed with part of its parameters"
    _check_claims(study, digits_checkpoint.space)
    # Each dead trial that had claimed an architecture was retried once, as that architecture; one
    # killed before its sampler chose had nothing to lose and is not retried.
    for t in died:
        retries = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        if ARCH_KEY in t.system_attrs:
            assert len(retries) == 1, (t.number, [r.number for r in retries])
            assert retries[0].system_attrs.get(ARCH_KEY) == t.system_attrs[ARCH_KEY]
        else:
            assert not retries and not t.params, (t.number, t.params)


# 3. A poison architecture.

@pytest.mark.slow
def test_a_poison_architecture_is_tried_1_plus_max_retries_times_then_failed_with_its_cause(
        tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/poison.log"
    name = create_aeb_study(storage, digits_checkpoint.path, "--max-retries", "2")
    study = plain_study(storage, name)
    space = digits_checkpoint.space
    poison = space.smallest()
    study.enqueue_trial(space.params_from_config(poison))
    log = tmp_path / "tries.log"
    result = subprocess.run([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", "8",
                             "--workers", "2", "--no-progress"], cwd=tmp_path,
                            env=_hooked_env(tmp_path, log, poison=poison.arch_id), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    tried = [arch for _, arch, _ in fault_worker.tries(log)]
    assert tried.count(poison.arch_id) == 1 + 2
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 8
    given_up = [t for t in trials if t.user_attrs.get("gave_up")]
    assert len(given_up) == 1 and _arch(space, given_up[0]) == poison.arch_id
    assert given_up[0].user_attrs["gave_up"].startswith("killed by SIGKILL")
    shown = subprocess.run([*CLI, "show", "--storage", storage, "--study-name", name], env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert (f"failed for good: trial {given_up[0].number} ({poison.arch_id}) after 3 tries: killed by SIGKILL"
            in shown.stdout), shown.stdout


# 4. Ctrl-C.

@pytest.mark.slow
def test_a_trial_interrupted_by_ctrl_c_is_evaluated_first_by_the_next_optimize(tmp_path, digits_checkpoint):
    storage = f"journal://{tmp_path}/int.log"
    name = create_aeb_study(storage, digits_checkpoint.path)
    log = tmp_path / "tries.log"
    proc = subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", name, "--n-trials", "6",
                             "--no-progress"], cwd=tmp_path, env=_hooked_env(tmp_path, log, pause=0.5),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    study = plain_study(storage, name)
    try:
        deadline = time.monotonic() + 120
        while not fault_worker.tries(log) and time.monotonic() < deadline:
            time.sleep(0.05)
        interrupted, arch, _ = fault_worker.tries(log)[0]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert study.get_trials()[interrupted].state == TrialState.FAIL
    assert main(["optimize", "--storage", storage, "--study-name", name, "--n-trials", "1", "--no-progress"]) == 0
    trials = study.get_trials()
    retried = [t for t in trials if t.user_attrs.get("retry_of") == interrupted]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert _arch(digits_checkpoint.space, retried[0]) == arch
    # Evaluated first: no trial after the interrupted one completed before it.
    assert retried[0].number == min(t.number for t in trials if t.number > interrupted
                                    and t.state == TrialState.COMPLETE)


# 5. Two creates of one new name at the same moment.

@pytest.mark.slow
def test_two_creates_of_one_new_name_at_once_leave_one_study_and_one_line(tmp_path, digits_checkpoint):
    storage = f"sqlite:///{tmp_path}/race.db"
    for round_ in range(4):
        name = f"race-{round_}"
        argv = [*CLI, "create", "--storage", storage, "--study-name", name, "--objective", "pareto",
                "--checkpoint", str(digits_checkpoint.path), "--e-ref", "1e-4"]
        procs = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outcomes = sorted((p.wait(timeout=120), p.stderr.read()) for p in procs)
        assert [code for code, _ in outcomes] == [0, 2], outcomes
        lines = outcomes[1][1].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"autospk-study: error: study '{name}'"), outcomes[1][1]
        from studies.study import load

        study, settings = load(storage, name)
        assert settings.objective == "pareto" and len(study.trials) == 1


# 6. Heartbeats per study.

def test_two_studies_with_different_heartbeats_in_one_process_keep_their_own(tmp_path, digits_checkpoint):
    if not server_answers(POSTGRES):
        pytest.fail(f"no PostgreSQL server answers at {POSTGRES}")
    from nas._optuna_private import study_key
    from studies.study import load

    fast = create_aeb_study(POSTGRES, digits_checkpoint.path, heartbeat=2)
    slow = create_aeb_study(POSTGRES, digits_checkpoint.path, heartbeat=9)
    study_fast, _ = load(POSTGRES, fast, heartbeat=True)
    study_slow, _ = load(POSTGRES, slow, heartbeat=True)
    assert study_key(study_fast)[0].get_heartbeat_interval() == 2
    assert study_key(study_slow)[0].get_heartbeat_interval() == 9


# 7. Memory of the host and of its GPUs.

def test_the_worker_cap_reads_the_cgroup_memory_limit(tmp_path):
    from studies import hosts

    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{6 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2 * 2**30}\n")
    assert hosts.cgroup_available(cgroup) == 4 * 2**30
    limit, reason = hosts.worker_limit(cores=64, available=hosts.available_memory(cgroup=cgroup))
    assert limit == int(4 / hosts.WORKER_MEMORY_GIB) and "4.0 GiB available memory" in reason
    (cgroup / "memory.max").write_text("max\n")
    assert hosts.cgroup_available(cgroup) is None


def test_more_workers_on_one_gpu_than_its_memory_fits_are_refused(tmp_path):
    from studies import hosts

    per_gpu = hosts.gpu_worker_limit(free_bytes=10 * 2**30, worker_bytes=3 * 2**30)
    assert per_gpu == 3
    message = hosts.check_gpu_memory(["cuda:0"] * 4, free={"cuda:0": 10 * 2**30}, worker_bytes=3 * 2**30)
    assert message == ("4 workers on cuda:0 need 12.0 GiB for the largest subnet's evaluation (3.0 GiB each, "
                       "measured) but cuda:0 has 10.0 GiB free: run at most 3 there")
    assert hosts.check_gpu_memory(["cuda:0"] * 3, free={"cuda:0": 10 * 2**30}, worker_bytes=3 * 2**30) is None


@pytest.mark.gpu
def test_a_workers_gpu_memory_is_measured_and_too_many_workers_refused(tmp_path, digits_checkpoint):
    from studies import hosts
    from studies.builders import gpu_memory
    from studies.study import load

    storage = f"sqlite:///{tmp_path}/gpu.db"
    name = create_aeb_study(storage, digits_checkpoint.path)
    _, settings = load(storage, name)
    worker_bytes, free = gpu_memory(settings, ["cuda:0"])
    assert worker_bytes > hosts.CUDA_CONTEXT_BYTES and free["cuda:0"] > worker_bytes
    fit = hosts.gpu_worker_limit(free_bytes=free["cuda:0"], worker_bytes=worker_bytes)
    assert hosts.check_gpu_memory(["cuda:0"] * fit, free=free, worker_bytes=worker_bytes) is None
    assert hosts.check_gpu_memory(["cuda:0"] * (fit + 1), free=free, worker_bytes=worker_bytes).endswith(
        f"run at most {fit} there")


# 8. The data fingerprint covers every training sample.

def test_an_edit_to_any_training_image_changes_the_fingerprint(tmp_path):
    import numpy as np
    from PIL import Image

    from nas.data import fingerprint, load_dataset
    from nas.dataspec import DatasetSpec
    from tests.helpers import image_tree

    image_tree(tmp_path, ("a", "b"), 60, 8, "L")
    spec = DatasetSpec(name="folder", root=str(tmp_path))
    splits = load_dataset(spec)
    before = fingerprint(splits)
    train = splits.train_eval
    for position in (1, len(train) // 2 + 1, len(train) - 2):  # images between any fixed sample's
        path = train.dataset.samples[train.indices[position]][0]
        with Image.open(path) as image:
            pixels = np.asarray(image).copy()
        pixels[0, 0] = 255 - pixels[0, 0]
        Image.fromarray(pixels, mode="L").save(path)
        after = fingerprint(load_dataset(spec))
        assert after != before, f"an edit to training image {position} left the fingerprint as it was"
        before = after


def test_a_checkpoint_fingerprinted_before_every_sample_was_hashed_still_matches_its_data(
        tmp_path, digits_checkpoint, digits_data):
    import dataclasses

    from models import ConfigError
    from nas.checkpoint import load_checkpoint
    from nas.dataspec import DatasetSpec
    from tests.helpers import DIGITS_LEGACY_FINGERPRINT

    ckpt = load_checkpoint(digits_checkpoint.path)
    old = dataclasses.replace(ckpt, data_fingerprint=DIGITS_LEGACY_FINGERPRINT)
    old.check_data(tmp_path / "old.pt", DatasetSpec("digits"), digits_data, fix="-")
    edited = dataclasses.replace(ckpt, data_fingerprint="0" * 16)
    with pytest.raises(ConfigError, match="now has data fingerprint 2-"):
        edited.check_data(tmp_path / "old.pt", DatasetSpec("digits"), digits_data, fix="-")


# 9. A study written by a newer autospk.

def test_a_study_written_by_a_newer_autospk_names_its_version_and_the_upgrade(tmp_path, digits_checkpoint, capsys):
    from studies.settings import SETTINGS_ATTR

    storage = f"sqlite:///{tmp_path}/new.db"
    name = create_aeb_study(storage, digits_checkpoint.path)
    study = plain_study(storage, name)
    stored = dict(study.user_attrs[SETTINGS_ATTR])
    stored.update(version=99, written_by="9.1.0")
    study.set_user_attr(SETTINGS_ATTR, stored)
    assert main(["show", "--storage", storage, "--study-name", name]) == 2
    err = capsys.readouterr().err
    assert err == (f"autospk-study: error: study '{name}' was written by autospk 9.1.0 (settings version 99); this "
                   f"is autospk {_version()}, which reads versions up to {_settings_version()}: upgrade autospk "
                   "(pip install -U autospk) to read it\n")


def _version() -> str:
    from studies.arguments import version

    return version()


def _settings_version() -> int:
    from studies.settings import SETTINGS_VERSION

    return SETTINGS_VERSION
