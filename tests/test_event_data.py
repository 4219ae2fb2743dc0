"""Event-camera data end to end: the publishers' file layouts (tests/event_files.py) read by
spikingjelly's loaders, split and augmented by `nas.data`, trained on and searched by the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import ConfigError
from nas.data import event_loader, fingerprint, load_dataset, split_labels
from nas.dataspec import DatasetSpec
from studies.cli import main
from tests.event_files import EventFiles, write_cifar10_dvs, write_dvs128_gesture, write_nmnist

FRAMES = 4
# Enough samples per class for a stratified 15 % validation split (and, for CIFAR10-DVS, a
# 20 % test split) to hold every class.
WRITERS = {
    "n-mnist": lambda root: write_nmnist(root, samples_per_class=7),
    "cifar10-dvs": lambda root: write_cifar10_dvs(root, samples_per_class=9),
    "dvs128-gesture": lambda root: write_dvs128_gesture(root, samples_per_class=7),
}
SIDE = {"n-mnist": 32, "cifar10-dvs": 128, "dvs128-gesture": 128}


pytestmark = pytest.mark.usefixtures("offline_event_loaders")


def written(name: str, root, monkeypatch) -> EventFiles:
    """Write `name`'s tiny files under `root` and make its loader accept their checksums."""
    files = WRITERS[name](root)
    loader = event_loader(name)
    resources = [(f, url, files.md5[f]) for f, url, _ in loader.resource_url_md5()]
    monkeypatch.setattr(loader, "resource_url_md5", classmethod(lambda cls: resources))
    return files


@pytest.mark.parametrize("name", list(WRITERS))
def test_event_splits_hold_frame_sequences_of_event_counts(tmp_path, monkeypatch, name):
    files = written(name, tmp_path, monkeypatch)
    data = load_dataset(DatasetSpec(name, root=str(tmp_path), frames=FRAMES))
    side = SIDE[name]
    assert (data.frames, data.in_channels, data.img_size, data.num_classes) == (FRAMES, 2, side, files.num_classes)
    sizes = {split: len(getattr(data, split)) for split in ("train", "val", "test")}
    written_test = len(files.split("test")) if name != "cifar10-dvs" else None
    if written_test is not None:  # the publisher's split
        assert sizes["test"] == written_test and sizes["train"] + sizes["val"] == len(files.split("train"))
    else:  # carved out, stratified
        assert sizes["test"] == pytest.approx(0.2 * len(files.samples), abs=files.num_classes)
    for split in ("train", "val", "test"):
        assert set(split_labels(getattr(data, split))) == set(range(files.num_classes))
    assert set(data.train.indices).isdisjoint(data.val.indices)
    # Labels are the class numbers, in the publisher's order (gesture 10 is label 9, not 2).
    by_label = {s.label: s.folder for s in files.samples}
    if name == "dvs128-gesture":
        assert all(int(folder) == label for label, folder in by_label.items())

    frames, label = data.val[0]
    assert frames.shape == (FRAMES, 2, side, side) and frames.dtype == torch.float32
    assert (frames >= 0).all() and torch.equal(frames, frames.round())  # counts, not normalised
    # Evaluation frames are the loader's, centre-cropped: every event of a 128x128 sample is there.
    if side == 128:
        path = Path(data.val.dataset.frames.samples[data.val.indices[0]][0])
        sample = next(s for s in files.split("train" if written_test is not None else "")
                      if (s.folder, s.name) == (path.parent.name, path.stem))
        assert frames.sum() == len(sample.events) and label == sample.label

    # Training frames are flipped and rolled, the same way for every frame: the counts survive.
    torch.manual_seed(1)
    augmented = [data.train[0][0] for _ in range(4)]
    plain = data.train_eval[0][0]
    assert all(a.sum() == plain.sum() and a.shape == plain.shape for a in augmented)
    assert any(not torch.equal(a, plain) for a in augmented)
    assert fingerprint(data) == fingerprint(load_dataset(DatasetSpec(name, root=str(tmp_path), frames=FRAMES)))
    assert fingerprint(data) != fingerprint(load_dataset(DatasetSpec(name, root=str(tmp_path), frames=2)))


def test_missing_or_altered_event_files_are_refused_before_the_loader_runs(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"missing \['Train.zip', 'Test.zip'\]"):
        load_dataset(DatasetSpec("n-mnist", root=str(tmp_path), frames=FRAMES))
    assert not (tmp_path / "download").exists()  # nothing was created, nothing fetched
    write_nmnist(tmp_path, samples_per_class=1)  # the real checksums stay: these files fail them
    with pytest.raises(FileNotFoundError, match="not the publisher's"):
        load_dataset(DatasetSpec("n-mnist", root=str(tmp_path), frames=FRAMES))
    assert (tmp_path / "download" / "Train.zip").exists()  # and the user's file is left alone
    (tmp_path / "events_np").mkdir()
    (tmp_path / "events_np.building").touch()  # spikingjelly's mark of a conversion cut short
    with pytest.raises(ConfigError, match="did not finish: remove .*events_np.building"):
        load_dataset(DatasetSpec("n-mnist", root=str(tmp_path), frames=FRAMES))


def test_frames_are_for_event_data_only_and_needed_there(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="event data sets"):
        DatasetSpec("cifar10", root=str(tmp_path), frames=4)
    written("n-mnist", tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="frames per sample"):
        load_dataset(DatasetSpec("n-mnist", root=str(tmp_path)))


SPACE = """patch_size = {patch}
[genes]
depth = [1]
embed_dim = [16]
mlp_ratio = [1.0, 2.0]
num_heads = [2]
threshold = [1.0]
tau = [2.0]
time_steps = [2, 4]
"""


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.slow
def test_train_create_optimize_show_on_event_data(tmp_path, monkeypatch, capsys, name):
    root = tmp_path / "data"
    written(name, root, monkeypatch)
    space = tmp_path / "space.toml"
    space.write_text(SPACE.format(patch=4 if SIDE[name] == 32 else 16))
    checkpoint = tmp_path / "sn.pt"
    assert main(["train-supernet", "--dataset", name, "--data-root", str(root), "--space", str(space),
                 "--epochs", "1", "--batch-size", "8", "--rule", "uniform", "--output", str(checkpoint),
                 "--no-progress"]) == 0
    state = torch.load(checkpoint, weights_only=True)
    assert state["dataset"]["frames"] == 4  # the space's largest T
    assert state["supernet"]["event_input"] is True and state["supernet"]["in_channels"] == 2
    assert len(state["history"]) == 1 and "val_accuracy_largest" in state["history"][0]

    storage = f"sqlite:///{tmp_path}/s.db"
    assert main(["create", "--storage", storage, "--study-name", "e", "--objective", "pareto", "--checkpoint",
                 str(checkpoint), "--population-size", "2", "--calib-batches", "1", "--calib-batch-size", "8",
                 "--eval-batch-size", "16", "--first-layer", "per_step"]) == 0
    assert main(["optimize", "--storage", storage, "--study-name", "e", "--n-trials", "3", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", "--storage", storage, "--study-name", "e"]) == 0
    out = capsys.readouterr().out
    assert "first layer per_step" in out and name in out
    assert main(["show", "--storage", storage, "--study-name", "e", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["energy_mj"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert {r["time_steps"] for r in rows} <= {2, 4}
    assert np.isfinite([r["energy_mj"] for r in rows]).all()
