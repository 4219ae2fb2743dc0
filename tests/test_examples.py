"""The cluster examples in examples/: they parse, and they run as written, without Slurm."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import torch

from studies.cli import main
from studies.storage import open_storage
from tests.conftest import TINY_SPACE, server_answers
from tests.helpers import ENV, POSTGRES, assert_study_done

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKERS = EXAMPLES / "slurm" / "search_workers.sbatch"
TRAIN = EXAMPLES / "slurm" / "train_supernet.sbatch"


def _scripts() -> list[Path]:
    """Every bash script under examples/, known by its first line."""
    return sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.read_bytes().startswith(b"#!/bin/bash"))


def _env(**variables: str) -> dict[str, str]:
    """The environment of a script run as a Slurm task would be, on a host without Slurm.

    The venv's console scripts (autospk-study, torchrun) come first on PATH, and the code
    under test first on PYTHONPATH (the venv's editable install may point at another
    checkout); no Slurm variable leaks in beyond those given, and only system folders follow
    on PATH, so no srun can be found.
    """
    env = {k: v for k, v in ENV.items() if not k.startswith("SLURM_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(variables)
    return env


def test_every_example_script_parses():
    scripts = _scripts()
    assert {WORKERS, TRAIN} <= set(scripts)
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script.relative_to(ROOT)}: {proc.stderr}"
        assert "#SBATCH" in script.read_text(), f"{script.relative_to(ROOT)} has no #SBATCH directives"


def test_the_worker_script_names_a_missing_variable(tmp_path):
    proc = subprocess.run(["bash", str(WORKERS)], capture_output=True, text=True, cwd=tmp_path,
                          env=_env(AUTOSPK_STORAGE=POSTGRES))
    assert proc.returncode != 0
    assert "AUTOSPK_STUDY: set AUTOSPK_STUDY to the name the study was created with" in proc.stderr


@pytest.mark.slow
def test_the_worker_script_runs_a_postgresql_study_as_an_array_task_would(tmp_path, digits_checkpoint):
    if not server_answers(POSTGRES):
        pytest.skip(f"no postgresql server answers at {POSTGRES}")
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    assert main(["create", "--storage", POSTGRES, "--study-name", name, "--objective", "pareto3", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "4", "--num-parents", "2"]) == 0
    try:
        # One task of an array, run by hand: several at once are test_cli's two-worker test.
        proc = subprocess.run(["bash", str(WORKERS)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=_env(AUTOSPK_STORAGE=POSTGRES, AUTOSPK_STUDY=name, N_TRIALS="4", DEVICE="cpu",
                                       SLURM_ARRAY_JOB_ID="4242", SLURM_ARRAY_TASK_ID="3"))
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
        assert "array task 3 of job 4242" in proc.stdout and POSTGRES not in proc.stdout
        assert f"study '{name}': 4 finished trials (4 new)" in proc.stdout
        study = assert_study_done(POSTGRES, name, 4)
        assert len(study.trials) == 4 and study.metric_names == ["accuracy", "energy_mj", "params"]
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(POSTGRES))


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    genes = "\n".join(f"{k} = {v}" for k, v in TINY_SPACE["genes"].items())
    path.write_text(f"patch_size = 2\n[genes]\n{genes}\n")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_training_script_trains_with_torchrun_on_one_host(tmp_path, tiny_toml):
    out = tmp_path / "ddp.pt"
    proc = subprocess.run(
        ["bash", str(TRAIN), "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=_env(OUTPUT=str(out), DATASET="digits", SPACE=str(tiny_toml), GPUS_PER_NODE="2",
                 RDZV_PORT=str(_free_port())))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 node(s) x 2 rank(s), rendezvous 127.0.0.1:" in proc.stdout
    state = torch.load(out, weights_only=True)
    assert state["epoch"] == 1 and state["history"][0]["loss"] > 0
