"""Helpers that several test modules share: running the command line, fake data sets, fake objectives."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image

from energy import analytic_energy
from models import count_params
from studies.cli import main
from studies.storage import open_storage

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CLI = [sys.executable, "-m", "studies.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}  # tiny models: see conftest._one_thread


def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def assert_study_done(storage: str, name: str, n: int) -> optuna.Study:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) >= n
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    evaluated = [t.user_attrs["arch_id"] for t in complete if "duplicate_of" not in t.user_attrs]
    assert len(evaluated) == len(set(evaluated)), "an architecture was evaluated twice"
    return study


def fails(capsys, *argv: str) -> str:
    """Run the CLI in-process; it must exit 2 with a message on stderr."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("autospk-study: error: ")
    return err


def write_pickle(path: Path, batch: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def fake_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def fake_cifar10(root: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    """The python-pickle CIFAR-10 release in miniature: five training batches, a test batch and
    the meta file, with string keys as the publisher's Python 2 pickles read back. Its files
    cannot match the publisher's md5 sums: tests that read it take `accept_fake_cifar`."""
    rng = np.random.default_rng(0)
    data = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = fake_images(rng, per_batch)
        labels = [i % 10 for i in range(per_batch)]
        write_pickle(root / "cifar-10-batches-py" / name, {"data": images, "labels": labels})
        data[name] = images
    write_pickle(root / "cifar-10-batches-py" / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    return data


def image_tree(root: Path, classes: tuple[str, ...], per_class: int, size: int, mode: str) -> None:
    rng = np.random.default_rng(len(classes) * per_class)
    shape = (size, size) if mode == "L" else (size, size, 3)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i:03d}.png")


DIGITS_FINGERPRINT = "2-f70b08a032e862d6"
DIGITS_LEGACY_FINGERPRINT = "7f964385b4d94202"
"""The fingerprint of digits as checkpoints wrote it before every sample was hashed."""
"""Pinned: checkpoints and studies store fingerprints, so a change to how they are computed
makes every one made before refuse its own data."""


def tiny_digits_cfg(space):
    return space.supernet_config(in_channels=1, img_size=8, num_classes=10)


def fake_objective(space, delay: float = 0.0):
    """Accuracy grows with size, energy is the analytic dense energy: a real trade-off."""
    energy_mj = analytic_energy(tiny_digits_cfg(space), firing_rate=0.2)

    def objective(trial):
        cfg = space.suggest(trial)
        trial.set_user_attr("arch_id", cfg.arch_id)
        time.sleep(delay)
        energy = energy_mj(cfg)
        accuracy = 1 - 1 / (1 + cfg.embed_dim * cfg.depth * cfg.time_steps * sum(cfg.mlp_ratio[: cfg.depth]) / 50)
        return accuracy, energy

    return objective


def fake_objective3(space):
    """`fake_objective` plus the subnet's parameters, which T and the neuron genes leave alone."""
    two = fake_objective(space)
    supernet_cfg = tiny_digits_cfg(space)

    def objective(trial):
        accuracy, energy = two(trial)
        return accuracy, energy, count_params(supernet_cfg, space.config_from_params(trial.params))

    return objective


def analytic_cost(space):
    return analytic_energy(tiny_digits_cfg(space))


def study_storage(backend: str, tmp_path: Path) -> str:
    """A journal file in `tmp_path`, or the machine's PostgreSQL (which the tests need running)."""
    from tests.conftest import server_answers

    if backend == "journal":
        return f"journal://{tmp_path}/study.log"
    if not server_answers(POSTGRES):
        pytest.fail(f"no PostgreSQL server answers at {POSTGRES}")
    return POSTGRES


def create_aeb_study(storage: str, checkpoint: Path, *extra: str, heartbeat: int = 1) -> str:
    """A fresh aeb study through the CLI, by default with a short heartbeat (and orphan grace
    period: 3 heartbeats), no enqueued baseline and 4 trials per generation; its name."""
    from studies.cli import main

    name = f"w-{uuid.uuid4().hex[:8]}"
    assert main(["create", "--storage", storage, "--study-name", name, "--objective", "aeb", "--checkpoint",
                 str(checkpoint), "--population-size", "4", "--no-enqueue-largest",
                 "--heartbeat-interval", str(heartbeat), *extra]) == 0
    return name


def plain_study(storage: str, name: str):
    """The study as Optuna loads it (no sampler of ours)."""
    import optuna

    from studies.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))
