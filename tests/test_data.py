from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torchvision import datasets

from nas.data import DataSplits, load_dataset
from nas.dataspec import DATASETS, DatasetSpec
from tests.helpers import DIGITS_FINGERPRINT, fake_cifar10, fake_images, image_tree, write_pickle

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)


def _split_names(splits: DataSplits) -> dict[str, set[int]]:
    return {name: set(np.asarray(getattr(splits, name).indices).tolist())
            for name in ("train", "val", "test")}


def _labels(dataset) -> np.ndarray:
    return np.array([dataset[i][1] for i in range(len(dataset))])


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset(DatasetSpec(name="digits"))


def test_digits_splits_are_disjoint_stratified_and_complete(digits: DataSplits):
    idx = _split_names(digits)
    assert not idx["train"] & idx["val"] and not idx["train"] & idx["test"]
    assert not idx["val"] & idx["test"]
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(idx["train"] | idx["val"] | idx["test"]) == 1797
    assert len(digits.test) == 360 and len(digits.val) == 216
    for split in (digits.train, digits.val, digits.test):
        assert set(_labels(split).tolist()) == set(range(10))
    assert (digits.in_channels, digits.img_size, digits.num_classes) == (1, 8, 10)


def test_digits_items_are_normalised_float_images_with_int_labels(digits: DataSplits):
    image, label = digits.val[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int)
    raw = load_digits()
    j = int(digits.val.indices[0])
    expected = (torch.tensor(raw.images[j], dtype=torch.float32) / 16 - digits.mean[0]) / digits.std[0]
    assert torch.allclose(image[0], expected, atol=1e-5)
    assert label == raw.target[j]
    train = torch.stack([digits.train_eval[i][0] for i in range(len(digits.train_eval))])
    assert abs(train.mean().item()) < 1e-4
    assert train.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_splits_depend_on_the_seed_only():
    a = _split_names(load_dataset(DatasetSpec(name="digits", seed=3)))
    b = _split_names(load_dataset(DatasetSpec(name="digits", seed=3)))
    c = _split_names(load_dataset(DatasetSpec(name="digits", seed=4)))
    assert a == b
    assert a["val"] != c["val"] and a["test"] != c["test"]


def test_digits_train_augmentation_shifts_images_and_train_eval_is_fixed(digits: DataSplits):
    assert np.array_equal(digits.train.indices, digits.train_eval.indices)
    black = -digits.mean[0] / digits.std[0]
    changed = 0
    for i in range(30):
        plain, label = digits.train_eval[i]
        assert torch.equal(plain, digits.train_eval[i][0])
        shifted, shifted_label = digits.train[i]
        assert shifted.shape == (1, 8, 8) and shifted_label == label
        changed += not torch.equal(shifted, plain)
        padded = torch.nn.functional.pad(plain - black, (1, 1, 1, 1)) + black
        assert any(torch.allclose(shifted, padded[:, top:top + 8, left:left + 8], atol=1e-6)
                   for top in range(3) for left in range(3))
    assert changed > 10


def _fake_cifar100(root: Path, n_train: int = 400, n_test: int = 100) -> None:
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [i % 100 for i in range(n)]
        write_pickle(root / "cifar-100-python" / name,
                     {"data": fake_images(rng, n), "fine_labels": fine, "coarse_labels": [f // 5 for f in fine]})
    write_pickle(root / "cifar-100-python" / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})


def test_fake_cifar10_loads_with_spec_constants_and_pixel_layout(tmp_path: Path, accept_fake_cifar):
    raw = fake_cifar10(tmp_path)
    splits = load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    assert len(splits.train) + len(splits.val) == 100 and len(splits.val) == 15
    assert len(splits.test) == 20
    assert (splits.in_channels, splits.img_size, splits.num_classes) == (3, 32, 10)
    assert splits.mean == CIFAR10_MEAN and splits.std == CIFAR10_STD
    assert set(_labels(splits.val).tolist()) == set(range(10))
    assert not _split_names(splits)["train"] & _split_names(splits)["val"]

    train_rows = np.concatenate([raw[f"data_batch_{i}"] for i in range(1, 6)])
    j = int(splits.train_eval.indices[5])
    expected = torch.tensor(train_rows[j], dtype=torch.float32).view(3, 32, 32) / 255
    expected = (expected - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    image, label = splits.train_eval[5]
    assert image.dtype == torch.float32 and torch.allclose(image, expected, atol=1e-5)
    assert label == j % 10
    test_image, _ = splits.test[0]
    expected_test = torch.tensor(raw["test_batch"][0], dtype=torch.float32).view(3, 32, 32) / 255
    expected_test = (expected_test - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    assert torch.allclose(test_image, expected_test, atol=1e-5)

    augmented = [splits.train[i] for i in range(4)]
    assert all(img.shape == (3, 32, 32) and img.dtype == torch.float32 for img, _ in augmented)
    assert any(not torch.allclose(img, splits.train_eval[i][0]) for i, (img, _) in enumerate(augmented))


def test_fake_cifar100_loads_with_its_own_constants(tmp_path: Path, accept_fake_cifar):
    _fake_cifar100(tmp_path)
    splits = load_dataset(DatasetSpec(name="cifar100", root=str(tmp_path), val_fraction=0.25))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (300, 100, 100)
    assert splits.num_classes == 100
    assert splits.mean == CIFAR100_MEAN and splits.std == CIFAR100_STD
    assert set(_labels(splits.val).tolist()) == set(range(100))
    image, label = splits.train[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)


def test_missing_cifar_files_name_the_expected_path(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    message = str(err.value)
    assert os.path.join(str(tmp_path), "cifar-10-batches-py", "data_batch_1") in message
    assert "download=True" in message
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset(DatasetSpec(name="cifar100", root=str(tmp_path)))


def test_cifar_download_asks_torchvision_once_then_reads_the_files(tmp_path: Path, monkeypatch, accept_fake_cifar):
    calls = []

    def download(self) -> None:
        calls.append(self.root)
        fake_cifar10(Path(self.root))

    monkeypatch.setattr(datasets.CIFAR10, "download", download)
    splits = load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path), download=True))
    assert calls == [str(tmp_path)]
    assert len(splits.test) == 20 and splits.classes[0] == "airplane"


def test_a_cifar_release_that_is_not_the_publishers_is_refused_by_its_md5(tmp_path: Path):
    fake_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DatasetSpec(name="cifar10", root=str(tmp_path)))
    assert str(err.value).startswith(f"cifar10 files under {tmp_path / 'cifar-10-batches-py'} are not the "
                                     "publisher's python-pickle release (an md5 sum differs")


def _assert_normalised(splits: DataSplits) -> None:
    images = torch.stack([splits.train_eval[i][0] for i in range(len(splits.train_eval))])
    assert torch.allclose(images.mean(dim=(0, 2, 3)), torch.zeros(splits.in_channels), atol=1e-4)
    assert torch.allclose(images.std(dim=(0, 2, 3)), torch.ones(splits.in_channels), atol=1e-3)


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1)])
def test_single_image_tree_is_split_with_shape_from_the_data(tmp_path: Path, mode: str, channels: int):
    image_tree(tmp_path, ("ant", "bee", "cat"), 12, 12, mode)
    splits = load_dataset(DatasetSpec(name="folder", root=str(tmp_path)))
    assert (splits.in_channels, splits.img_size, splits.num_classes) == (channels, 12, 3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (23, 5, 8)
    idx = _split_names(splits)
    assert not idx["train"] & idx["val"] and not idx["train"] & idx["test"] and not idx["val"] & idx["test"]
    assert set(_labels(splits.test).tolist()) == {0, 1, 2}
    for split in (splits.train, splits.train_eval, splits.val, splits.test):
        image, label = split[0]
        assert image.shape == (channels, 12, 12) and image.dtype == torch.float32
        assert isinstance(label, int)
    assert len(splits.mean) == channels
    _assert_normalised(splits)


def test_train_test_image_trees_and_resize(tmp_path: Path):
    image_tree(tmp_path / "train", ("ant", "bee", "cat"), 12, 12, "RGB")
    image_tree(tmp_path / "test", ("ant", "bee", "cat"), 4, 12, "RGB")
    splits = load_dataset(DatasetSpec(name="folder", root=str(tmp_path), img_size=16))
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (36, 12)
    assert splits.img_size == 16 and splits.train[0][0].shape == (3, 16, 16)
    assert splits.test[0][0].shape == (3, 16, 16)
    assert sorted(_labels(splits.test).tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_train_val_image_trees_are_accepted(tmp_path: Path):
    image_tree(tmp_path / "train", ("a", "b"), 10, 8, "L")
    image_tree(tmp_path / "val", ("a", "b"), 3, 8, "L")
    splits = load_dataset(DatasetSpec(name="folder", root=str(tmp_path)))
    assert len(splits.test) == 6 and splits.in_channels == 1 and splits.num_classes == 2


def test_image_trees_with_different_classes_are_rejected(tmp_path: Path):
    image_tree(tmp_path / "train", ("a", "b"), 6, 8, "RGB")
    image_tree(tmp_path / "test", ("a", "c"), 2, 8, "RGB")
    with pytest.raises(ValueError, match=r"only in train \['b'\], only in test \['c'\]"):
        load_dataset(DatasetSpec(name="folder", root=str(tmp_path)))


def test_missing_or_empty_image_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(DatasetSpec(name="folder", root=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(DatasetSpec(name="folder", root=str(tmp_path)))


@pytest.mark.parametrize("name", DATASETS)
def test_every_listed_data_set_is_accepted_and_has_a_loader(name, tmp_path: Path):
    spec = DatasetSpec(name=name, root=str(tmp_path))
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    try:
        splits = load_dataset(spec)
    except (FileNotFoundError, ValueError) as err:
        assert str(tmp_path) in str(err), "its loader should have looked in the (empty) root"
    else:
        assert len(splits.train) > 0 and splits.num_classes > 1


def test_unknown_data_set_and_missing_root_are_rejected():
    with pytest.raises(ValueError) as err:
        DatasetSpec(name="mnist")
    message = str(err.value)
    assert message.startswith("unknown data set 'mnist'; choose from ")
    assert all(repr(name) in message for name in DATASETS)
    needs_root = []
    for name in DATASETS:
        try:
            DatasetSpec(name=name)
        except ValueError as missing:
            assert f"data set {name!r} needs a root folder" in str(missing)
            needs_root.append(name)
    assert "digits" not in needs_root and {"cifar10", "folder"} <= set(needs_root)
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        DatasetSpec(name="digits", val_fraction=1.0)


def test_dataset_spec_round_trips_through_a_dict_and_rejects_unknown_keys():
    spec = DatasetSpec(name="folder", root="/data/x", val_fraction=0.1, test_fraction=0.3,
                       seed=7, download=False, img_size=24)
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    assert DatasetSpec.from_dict({"name": "digits"}) == DatasetSpec(name="digits")
    with pytest.raises(ValueError, match=r"unknown DatasetSpec key\(s\) \['colour'\]"):
        DatasetSpec.from_dict({"name": "digits", "colour": "red"})


def test_a_split_too_small_to_stratify_says_so(tmp_path: Path, accept_fake_cifar):
    _fake_cifar100(tmp_path, n_train=200)
    with pytest.raises(ValueError, match="stratified val split"):
        load_dataset(DatasetSpec(name="cifar100", root=str(tmp_path)))


def test_a_fingerprint_repeats_for_the_same_data_and_changes_with_any_of_it(digits: DataSplits, tmp_path: Path):
    from nas.data import fingerprint

    assert fingerprint(digits) == fingerprint(load_dataset(DatasetSpec(name="digits"))) == DIGITS_FINGERPRINT
    # Round-off in the normalisation statistics (another machine's reductions) changes nothing.
    nudged = dataclasses.replace(digits, mean=(digits.mean[0] + 1e-6,), std=(digits.std[0] * (1 + 1e-6),))
    assert fingerprint(nudged) == DIGITS_FINGERPRINT
    assert fingerprint(load_dataset(DatasetSpec(name="digits", seed=1))) != DIGITS_FINGERPRINT

    image_tree(tmp_path, tuple("abcdefghij"), 8, 8, "L")  # digits' shape: 10 classes of 8x8 grayscale
    spec = DatasetSpec(name="folder", root=str(tmp_path))
    folder = fingerprint(load_dataset(spec))
    assert folder == fingerprint(load_dataset(spec)) and folder != DIGITS_FINGERPRINT
    train = load_dataset(spec).train_eval
    first = train.dataset.samples[train.indices[0]][0]  # an image that is hashed
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(first)
    assert fingerprint(load_dataset(spec)) != folder
