"""CIFAR-10 and CIFAR-100 through torchvision's reader of the python-pickle release."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from torchvision import datasets, transforms

from ..dataspec import DatasetSpec
from .splits import ArrayItems, DataSplits, SplitView, array_content, stratified_split


@dataclass(frozen=True)
class _CifarConstants:
    """The torchvision reader of a CIFAR release and Spikformer's normalisation of it."""

    reader: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_CIFAR = {
    "cifar10": _CifarConstants(reader="CIFAR10", num_classes=10,
                               mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "cifar100": _CifarConstants(reader="CIFAR100", num_classes=100,
                                mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)),
}


def _missing_files(root: str, reader: type[datasets.CIFAR10]) -> list[str]:
    names = [name for name, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]
    paths = [os.path.join(root, reader.base_folder, name) for name in names]
    return [p for p in paths if not os.path.isfile(p)]


def _read(spec: DatasetSpec, reader: type[datasets.CIFAR10]) -> tuple[datasets.CIFAR10, datasets.CIFAR10]:
    """The train and test releases; fetched first if allowed and needed, else a clear error."""
    root = str(spec.root)
    missing = _missing_files(root, reader)
    if missing and spec.download:
        reader(root, train=True, download=True)
        missing = _missing_files(root, reader)
    if missing:
        raise FileNotFoundError(
            f"{spec.name} files not found: expected {missing[0]}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} under "
            f"{os.path.join(root, reader.base_folder)}; pass download=True (--download on the CLI) "
            f"or place the python-pickle release there")
    try:
        return reader(root, train=True), reader(root, train=False)
    except RuntimeError as err:  # torchvision's md5 check of every file
        raise FileNotFoundError(
            f"{spec.name} files under {os.path.join(root, reader.base_folder)} are not the publisher's "
            f"python-pickle release (an md5 sum differs: {err}); remove them and download again") from err


def _train_transform(mean: tuple[float, ...], std: tuple[float, ...]) -> transforms.Compose:
    """Spikformer's CIFAR augmentation; mixup belongs to the training loop."""
    # timm takes seconds to import; only CIFAR training needs it.
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.random_erasing import RandomErasing

    hparams = {
        "translate_const": int(32 * 0.45),
        "img_mean": tuple(min(255, round(255 * m)) for m in mean),
    }
    return transforms.Compose([
        transforms.ToPILImage(),
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        rand_augment_transform("rand-m9-n1", hparams),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
        RandomErasing(probability=0.25, mode="pixel", device="cpu"),
    ])


def load_cifar(spec: DatasetSpec) -> DataSplits:
    constants = _CIFAR[spec.name]
    train_set, test_set = _read(spec, getattr(datasets, constants.reader))
    train_labels = np.asarray(train_set.targets, dtype=np.int64)
    train, val = stratified_split(np.arange(len(train_labels)), train_labels, spec.val_fraction,
                                  spec.seed, "val")
    mean, std = constants.mean, constants.std
    evaluate = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    # The images stay uint8 arrays [N, 32, 32, 3]; ToTensor scales and reorders them.
    train_base = ArrayItems(train_set.data, train_labels)
    test_labels = np.asarray(test_set.targets, dtype=np.int64)
    return DataSplits(
        train=SplitView(train_base, train, _train_transform(mean, std)),
        train_eval=SplitView(train_base, train, evaluate),
        val=SplitView(train_base, val, evaluate),
        test=SplitView(ArrayItems(test_set.data, test_labels), np.arange(len(test_labels)), evaluate),
        in_channels=3, img_size=32, num_classes=constants.num_classes, mean=mean, std=std,
        classes=tuple(train_set.classes),
        train_content=array_content(train_set.data, train),
    )
