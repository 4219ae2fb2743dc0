"""spikingjelly's own loaders read the tiny original-format files of tests/event_files.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from spikingjelly.datasets import utils
from spikingjelly.datasets.cifar10_dvs import CIFAR10DVS, CIFAR10DVS_CLASS_NAMES
from spikingjelly.datasets.dvs128_gesture import DVS128Gesture
from spikingjelly.datasets.n_mnist import NMNIST

from tests.event_files import EventFiles, write_cifar10_dvs, write_dvs128_gesture, write_nmnist

T = 4


pytestmark = pytest.mark.usefixtures("offline_event_loaders")


def _trust_written_files(monkeypatch, loader, files: EventFiles) -> None:
    """Swap the publisher's md5s for those of the written files; the loader still checks them."""
    resources = [(name, url, files.md5[name]) for name, url, _ in loader.resource_url_md5()]
    monkeypatch.setattr(loader, "resource_url_md5", classmethod(lambda cls: resources))


def _check(dataset, files: EventFiles, split: str) -> None:
    H, W = files.sensor_size
    assert dataset.get_H_W() == (H, W)
    expected = {(s.folder, s.name): s for s in files.split(split)}
    assert len(dataset) == len(expected)
    seen = set()
    for i, (path, target) in enumerate(dataset.samples):
        sample = expected[(dataset.classes[target], Path(path).stem)]
        seen.add((sample.folder, sample.name))
        frames, label = dataset[i]
        assert label == target and dataset.classes[label] == sample.folder
        assert frames.shape == (T, 2, H, W)
        assert (frames >= 0).all() and (frames == np.round(frames)).all()
        # split_by="number": T slices of N // T events, the last one taking the remainder
        n = len(sample.events)
        per_frame = [n // T] * (T - 1) + [n - (T - 1) * (n // T)]
        assert frames.sum(axis=(1, 2, 3)).tolist() == per_frame
        counts = np.zeros((2, H, W))
        ev = sample.events
        np.add.at(counts, ((ev["p"] != 0).astype(int), ev["y"], ev["x"]), 1)
        np.testing.assert_array_equal(frames.sum(axis=0), counts)
    assert seen == set(expected)
    assert {s.label for s in expected.values()} == set(range(files.num_classes))


def test_nmnist(tmp_path, monkeypatch):
    files = write_nmnist(tmp_path, samples_per_class=2)
    _trust_written_files(monkeypatch, NMNIST, files)
    for train, split in ((True, "train"), (False, "test")):
        ds = NMNIST(tmp_path, train=train, data_type="frame", frames_number=T, split_by="number")
        _check(ds, files, split)
        assert len(ds) == 20
        assert all(ds.classes[t] == str(t) for _, t in ds.samples)  # folder "d" is class d
    assert (tmp_path / "events_np" / "train").is_dir()
    assert (tmp_path / f"frames_number_{T}_split_by_number" / "test").is_dir()


def test_nmnist_refuses_files_failing_md5(tmp_path):
    write_nmnist(tmp_path, samples_per_class=1)
    with pytest.raises(NotImplementedError, match="download"):
        NMNIST(tmp_path, train=True, data_type="frame", frames_number=T, split_by="number")
    assert not (tmp_path / "download" / "Train.zip").exists()  # the loader deletes it


def test_cifar10_dvs(tmp_path, monkeypatch):
    files = write_cifar10_dvs(tmp_path, samples_per_class=3)
    _trust_written_files(monkeypatch, CIFAR10DVS, files)
    # No official split: the loader takes no `train` and serves all samples.
    ds = CIFAR10DVS(tmp_path, data_type="frame", frames_number=T, split_by="number")
    _check(ds, files, "")
    assert ds.classes == list(CIFAR10DVS_CLASS_NAMES)  # already alphabetical: target = class id
    # spikingjelly's helper splits per class: the first ceil(n * ratio) samples go to train.
    train, test = utils.split_to_train_test_set(0.5, ds, files.num_classes)
    assert (len(train), len(test)) == (10 * math.ceil(3 * 0.5), 10 * (3 - math.ceil(3 * 0.5)))
    assert {t for _, t in train} == {t for _, t in test} == set(range(10))
    assert set(train.indices).isdisjoint(test.indices)


def test_dvs128_gesture(tmp_path, monkeypatch):
    files = write_dvs128_gesture(tmp_path, samples_per_class=1)
    _trust_written_files(monkeypatch, DVS128Gesture, files)
    for train, split in ((True, "train"), (False, "test")):
        ds = DVS128Gesture(tmp_path, train=train, data_type="frame", frames_number=T,
                           split_by="number")
        _check(ds, files, split)
        assert len(ds) == 11
    # Folders "0".."10" sort as strings, so the loader's targets are not the gesture numbers.
    assert ds.classes == sorted(str(label) for label in range(11))
    assert ds.class_to_idx["10"] == 2
