"""Image folders: one sub-folder of images per class, optionally split into ``train/`` and
``test/`` (or ``val/``) trees, read by torchvision's ``ImageFolder``."""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms

from models import ConfigError

from ..dataspec import DatasetSpec
from .splits import DataSplits, SplitView, file_content, mean_std, stratified_split, train_val_test

_GRAYSCALE_MODES = ("1", "L", "LA")
_MAX_STAT_IMAGES = 500
_FOLDER_TEST_NAMES = ("test", "val")


def _load_image(path: str, mode: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert(mode)


def _check_class_tree(path: str) -> None:
    if not os.path.isdir(path):
        raise ConfigError(f"image folder {path} does not exist or is not a folder")
    if not any(entry.is_dir() for entry in os.scandir(path)):
        raise ConfigError(f"image folder {path} has no class sub-folders; expected one "
                         f"sub-folder of images per class (e.g. {path}/cat/001.png)")


def _folder_sources(root: str) -> tuple[str, str | None]:
    """The train tree and, if the root has one, the separate test tree."""
    train_dir = os.path.join(root, "train")
    if os.path.isdir(train_dir):
        for name in _FOLDER_TEST_NAMES:
            test_dir = os.path.join(root, name)
            if os.path.isdir(test_dir):
                return train_dir, test_dir
    return root, None


def _image_folder(path: str) -> datasets.ImageFolder:
    _check_class_tree(path)
    return datasets.ImageFolder(path)


def load_folder(spec: DatasetSpec) -> DataSplits:
    root = str(spec.root)
    _check_class_tree(root)
    train_dir, test_dir = _folder_sources(root)
    train_base = _image_folder(train_dir)
    with Image.open(train_base.samples[0][0]) as first:
        mode = "L" if first.mode in _GRAYSCALE_MODES else "RGB"
        img_size = spec.img_size or min(first.size)
    # One colour mode for every image, taken from the first, so batches stack.
    loader = functools.partial(_load_image, mode=mode)
    train_base.loader = loader

    labels = np.asarray(train_base.targets, dtype=np.int64)
    if test_dir is None:
        train, val, test = train_val_test(labels, spec)
        test_base = train_base
    else:
        test_base = _image_folder(test_dir)
        test_base.loader = loader
        if test_base.classes != train_base.classes:
            raise ConfigError(
                f"class folders differ between {train_dir} and {test_dir}: "
                f"only in train {sorted(set(train_base.classes) - set(test_base.classes))}, "
                f"only in test {sorted(set(test_base.classes) - set(train_base.classes))}; "
                f"both trees need the same class sub-folders")
        train, val = stratified_split(np.arange(len(labels)), labels, spec.val_fraction,
                                       spec.seed, "val")
        test = np.arange(len(test_base))

    resize = transforms.Resize((img_size, img_size))
    stat_view = SplitView(train_base, _stat_sample(train, spec.seed),
                          transforms.Compose([resize, transforms.ToTensor()]))
    mean, std = mean_std(torch.stack([stat_view[i][0] for i in range(len(stat_view))]))
    normalise = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    evaluate = transforms.Compose([resize, *normalise])
    augment = transforms.Compose([
        resize,
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(img_size, padding=img_size // 8),
        *normalise,
    ])
    return DataSplits(
        train=SplitView(train_base, train, augment),
        train_eval=SplitView(train_base, train, evaluate),
        val=SplitView(train_base, val, evaluate),
        test=SplitView(test_base, test, evaluate),
        in_channels=1 if mode == "L" else 3, img_size=img_size,
        num_classes=len(train_base.classes), mean=mean, std=std, classes=tuple(train_base.classes),
        train_content=file_content([train_base.samples[i][0] for i in train]),
    )


def _stat_sample(train: np.ndarray, seed: int) -> np.ndarray:
    """Up to ``_MAX_STAT_IMAGES`` training indices: enough for stable channel statistics."""
    if len(train) <= _MAX_STAT_IMAGES:
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=_MAX_STAT_IMAGES, replace=False))
