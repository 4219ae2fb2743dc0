"""A supernet knows the data it was trained on: resuming, studies and evaluators refuse other data."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from PIL import Image

from models import ConfigError
from nas import DatasetSpec, SearchSpace, load_checkpoint, load_dataset, save_checkpoint
from nas.train import train_supernet
from studies.builders import load_evaluator
from studies.cli import main
from studies.errors import StudyError
from studies.storage import open_storage
from studies.study import load
from tests.conftest import DIGITS_RECIPE, TINY_SPACE
from tests.helpers import DIGITS_FINGERPRINT, fails, image_tree, run


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Ten classes of 8x8 grayscale images: the shape of digits, other data."""
    root = tmp_path_factory.mktemp("images")
    image_tree(root, tuple("abcdefghij"), 8, 8, "L")
    return root


@pytest.fixture(scope="module")
def folder_checkpoint(tmp_path_factory, image_folder) -> Path:
    """The tiny supernet trained for one epoch on `image_folder`."""
    path = tmp_path_factory.mktemp("folder-supernet") / "supernet.pt"
    train_supernet(SearchSpace.from_dict(TINY_SPACE), DatasetSpec("folder", root=str(image_folder)),
                   DIGITS_RECIPE.replace(epochs=1, batch_size=16), path, device="cpu", progress=False)
    return path


def _space_file(folder: Path) -> Path:
    path = folder / "tiny.toml"
    path.write_text("patch_size = 2\n[genes]\n" + "\n".join(f"{k} = {v}" for k, v in TINY_SPACE["genes"].items()))
    return path


def test_checkpoints_record_their_data_and_older_ones_still_load(digits_checkpoint, tmp_path):
    assert load_checkpoint(digits_checkpoint.path).data_fingerprint == DIGITS_FINGERPRINT
    state = torch.load(digits_checkpoint.path, weights_only=True)
    del state["data_fingerprint"]  # as written before fingerprints
    torch.save(state, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").data_fingerprint is None


def test_resume_on_other_data_of_the_same_shape_is_refused_and_keeps_the_checkpoint(
        tmp_path, digits_checkpoint, image_folder, capsys):
    checkpoint = tmp_path / "supernet.pt"
    shutil.copy(digits_checkpoint.path, checkpoint)
    trained = checkpoint.read_bytes()
    err = fails(capsys, "train-supernet", "--dataset", "folder", "--data-root", str(image_folder), "--space",
                 str(_space_file(tmp_path)), "--recipe", "digits", "--epochs", "3", "--batch-size", "16", "--output",
                 str(checkpoint), "--resume", "--no-progress")
    assert (f"supernet checkpoint {checkpoint} was trained on digits, split seed 0 with data fingerprint "
            f"{DIGITS_FINGERPRINT}, but folder {image_folder}, split seed 0 now has data fingerprint ") in err
    assert err.rstrip().endswith("resume it on the data it was trained on, or choose another --output")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match=r"but digits, split seed 1 now has data fingerprint"):
        train_supernet(digits_checkpoint.space, DatasetSpec("digits", seed=1), DIGITS_RECIPE, checkpoint,
                       resume=True, device="cpu", progress=False)
    assert checkpoint.read_bytes() == trained
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet.pt", "tiny.toml"]


@pytest.mark.slow
def test_a_study_refuses_its_checkpoint_swapped_for_one_trained_on_other_data(
        tmp_path, digits_checkpoint, folder_checkpoint, image_folder):
    checkpoint = tmp_path / "supernet.pt"
    shutil.copy(digits_checkpoint.path, checkpoint)
    storage = f"sqlite:///{tmp_path}/s.db"
    assert main(["create", "--storage", storage, "--study-name", "s", "--objective", "pareto", "--checkpoint",
                 str(checkpoint), "--population-size", "4", "--num-parents", "2"]) == 0
    _, settings = load(storage, "s")
    assert settings.data_fingerprint == DIGITS_FINGERPRINT

    shutil.copy(folder_checkpoint, checkpoint)
    message = (f"checkpoint {checkpoint} is not the supernet the study was created with: it was trained on folder "
               f"{image_folder}, split seed 0 with data fingerprint ")
    with pytest.raises(StudyError) as err:
        load_evaluator(settings, device="cpu")
    assert str(err.value).startswith(message)
    assert str(err.value).endswith(f"the study's on digits, split seed 0 with data fingerprint {DIGITS_FINGERPRINT}; "
                                   "put the study's checkpoint back, or create a new study on this one")
    proc = run("optimize", "--storage", storage, "--study-name", "s", "--n-trials", "2", "--no-progress",
               check=False)
    # Checked before any worker starts: one line, not one traceback per worker.
    assert proc.returncode == 2 and proc.stderr.startswith(f"autospk-study: error: {message}")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    study = optuna.load_study(study_name="s", storage=open_storage(storage))
    assert not study.get_trials(states=(TrialState.COMPLETE,))

    state = torch.load(digits_checkpoint.path, weights_only=True)
    del state["data_fingerprint"]  # a checkpoint from before fingerprints cannot vouch for its data
    torch.save(state, checkpoint)
    with pytest.raises(StudyError, match="with data fingerprint unknown, the study's on digits"):
        load_evaluator(settings, device="cpu")


@pytest.mark.slow
def test_data_edited_after_training_is_refused_by_create_and_by_the_study(
        tmp_path, folder_checkpoint, image_folder, capsys):
    images = tmp_path / "images"
    shutil.copytree(image_folder, images)
    checkpoint = tmp_path / "supernet.pt"
    trained = load_checkpoint(folder_checkpoint)
    save_checkpoint(checkpoint, dataclasses.replace(trained, dataset=DatasetSpec("folder", root=str(images))))
    storage = f"sqlite:///{tmp_path}/s.db"
    create = ["create", "--storage", storage, "--objective", "pareto", "--checkpoint", str(checkpoint),
              "--population-size", "4", "--num-parents", "2"]
    assert main([*create, "--study-name", "before"]) == 0
    _, settings = load(storage, "before")

    train = load_dataset(trained.dataset).train_eval
    first = images / Path(train.dataset.samples[train.indices[0]][0]).relative_to(image_folder)  # a hashed image
    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8), mode="L").save(first)
    message = (f"supernet checkpoint {checkpoint} was trained on folder {images}, split seed 0 with data fingerprint "
               f"{trained.data_fingerprint}, but folder {images}, split seed 0 now has data fingerprint ")
    with pytest.raises(ConfigError) as err:
        load_evaluator(settings, device="cpu")
    assert str(err.value).startswith(message)
    capsys.readouterr()
    err = fails(capsys, *create, "--study-name", "after")
    assert message in err and "restore the data it was trained on" in err and len(err.strip().splitlines()) == 1

    # Each worker loads the data and fails on it: a line for the run, a line for the cause.
    optimize = ["optimize", "--storage", storage, "--study-name", "before", "--n-trials", "2"]
    proc = run(*optimize, "--workers", "2", check=False)
    fix = "restore the data it was trained on, or train a supernet on the data as it is now"
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.fullmatch(r"autospk-study: error: 2 of 2 workers died, and the study holds 0 of 2 finished trials; run "
                        r"optimize again to go on\n  2 workers 0 \(pid \d+\), 1 \(pid \d+\): "
                        + re.escape(message) + r"2-[0-9a-f]{16} \(other images, labels or split\); " + re.escape(fix)
                        + r"\n", proc.stderr), proc.stderr
    verbose = run(*optimize, "--verbose", check=False)
    assert verbose.returncode == 2
    assert re.match(r"worker 0 \(pid \d+\):\nTraceback \(most recent call last\):\n", verbose.stderr), verbose.stderr
    assert "models.errors.ConfigError: supernet checkpoint" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("  worker 0 (pid ")
