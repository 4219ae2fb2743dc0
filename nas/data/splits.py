"""What every data set shares: the four splits, the views that make them, stratified splitting,
channel statistics and the data fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from models import ConfigError, InputTransform

from ..dataspec import DatasetSpec

_FINGERPRINT_IMAGES = 32
FINGERPRINT_PREFIX = "2-"
"""Marks a fingerprint of every training sample's stored bytes; one without it (written before
them, or of event data) hashes a fixed sample of 32 training images."""
_CHUNK = 1 << 20
_PIXEL_STEPS = 4080
"""Fingerprints hash pixels as multiples of 1 / 4080: 8-bit images (steps of 1/255) and digits
(steps of 1/16) both lie on that grid, so the round-off of normalising and un-normalising,
which may differ between machines, cannot change a fingerprint."""


@dataclass
class DataSplits:
    """The four splits of a data set and what a model needs to know about its images.

    Attributes:
        train: Training split with augmentation (supernet training).
        train_eval: The same training images without augmentation (BN recalibration).
        val: Carved from the training data, no augmentation; scored by the search.
        test: Only for final reports.
        in_channels: Image channels.
        img_size: Image height and width.
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        mean: Per-channel mean used for normalisation.
        std: Per-channel standard deviation used for normalisation.
        frames: Event data: frames per sample (items are ``[frames, C, H, W]``); None for
            static images.
        pixel_max: Images: the raw pixel value of full intensity, which scales them to [0, 1]
            before normalisation (16 for digits, 255 for 8-bit images); None for event data.
        classes: Class names, index = label; None where the data set's files name none.
        train_content: Feeds the stored bytes of every training sample, in split order, to the
            function it is given (`fingerprint`); None where reading them all would cost too
            much (event data: the publisher's files are checked by their md5 instead).
    """

    train: Dataset
    train_eval: Dataset
    val: Dataset
    test: Dataset
    in_channels: int
    img_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    frames: int | None = None
    pixel_max: float | None = 255.0
    classes: tuple[str, ...] | None = None
    train_content: Callable[[Callable[[bytes], object]], None] | None = field(default=None, repr=False,
                                                                               compare=False)

    def input_transform(self, time_steps: int) -> InputTransform:
        """What a model trained on these splits does to a raw sample (`models.InputTransform`):
        what `export` stores, so that an exported subnet runs without this module.

        Args:
            time_steps: T of the model (static images are shown at each step; event frames
                are integrated into T steps).
        """
        if self.frames is not None:
            return InputTransform(in_channels=self.in_channels, img_size=self.img_size, time_steps=time_steps,
                                  pixel_max=None, frames=self.frames, classes=self.classes)
        return InputTransform(in_channels=self.in_channels, img_size=self.img_size, time_steps=time_steps,
                              mean=tuple(self.mean), std=tuple(self.std), pixel_max=self.pixel_max,
                              classes=self.classes)


def fingerprint(splits: DataSplits) -> str:
    """A short hash of the data in `splits`, the same for the same data on any machine.

    It covers the sizes of the splits, the class count, the image shape, every training
    label (in split order) and the stored bytes of every training sample (the pixels of digits
    and CIFAR, each image file of a folder), streamed: the 34,000 training files of a
    50,000-image folder of 32x32 PNGs take a third of a second, under 5% of one pass of its
    data loader (benchmarks/bench_fingerprint.py). Event data sets, whose samples are large
    and whose downloads are checked by their publishers' md5 sums, hash the pixels of 32
    training samples spread evenly over the split instead (`legacy_fingerprint`).

    Args:
        splits: A data set as `load_dataset` returns it.

    Returns:
        ``2-`` and 16 hexadecimal digits; 16 digits alone for event data.
    """
    if splits.train_content is None:
        return legacy_fingerprint(splits)
    digest = _shape_and_labels(splits)
    splits.train_content(digest.update)
    return FINGERPRINT_PREFIX + digest.hexdigest()[:16]


def legacy_fingerprint(splits: DataSplits) -> str:
    """The fingerprint of the split sizes, class count, image shape, training labels and the
    pixels of up to 32 training images spread evenly over the split: what checkpoints written
    before fingerprints covered every sample hold, and what event data sets use."""
    train = splits.train_eval
    digest = _shape_and_labels(splits)
    mean = torch.tensor(splits.mean).view(-1, 1, 1)
    std = torch.tensor(splits.std).view(-1, 1, 1)
    for index in np.unique(np.linspace(0, len(train) - 1, num=min(len(train), _FINGERPRINT_IMAGES)).round()):
        image, _ = train[int(index)]
        pixels = torch.round((image * std + mean) * _PIXEL_STEPS).to(torch.int32)
        digest.update(pixels.numpy().astype("<i4").tobytes())
    return digest.hexdigest()[:16]


def fingerprint_matches(stored: str, splits: DataSplits) -> bool:
    """Whether a stored fingerprint is that of `splits`, in the kind it was written in."""
    if stored.startswith(FINGERPRINT_PREFIX) or splits.train_content is None:
        return stored == fingerprint(splits)
    return stored == legacy_fingerprint(splits)


def _shape_and_labels(splits: DataSplits):
    train = splits.train_eval
    digest = hashlib.sha256()
    shape = [len(train), len(splits.val), len(splits.test), splits.num_classes, splits.in_channels, splits.img_size]
    digest.update(json.dumps(shape).encode())
    digest.update(_labels(train).astype("<i8").tobytes())
    return digest


def array_content(images: np.ndarray, indices: np.ndarray) -> Callable[[Callable[[bytes], object]], None]:
    """`DataSplits.train_content` of images held in one array: the rows `indices`, a chunk at a time."""
    def feed(update: Callable[[bytes], object]) -> None:
        step = max(1, _CHUNK // max(1, images[0].nbytes))
        for start in range(0, len(indices), step):
            update(np.ascontiguousarray(images[indices[start:start + step]]).tobytes())
    return feed


def file_content(paths: Sequence[str]) -> Callable[[Callable[[bytes], object]], None]:
    """`DataSplits.train_content` of images stored one per file: each file's bytes, streamed."""
    def feed(update: Callable[[bytes], object]) -> None:
        for path in paths:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    update(chunk)
    return feed


def _labels(split: SplitView) -> np.ndarray:
    """The labels of `split`, in order; read from the base data set, not image by image."""
    base = split.dataset
    labels = base.labels if isinstance(base, ArrayItems) else base.targets
    return np.asarray(labels, dtype=np.int64)[np.asarray(split.indices, dtype=np.int64)]


def split_labels(split: Dataset) -> np.ndarray:
    """The labels of `split`, in order.

    A split made by `load_dataset` reads them from its base data set; any other data set
    is read item by item, which loads its images once.
    """
    if isinstance(split, SplitView):
        return _labels(split)
    return np.asarray([int(split[i][1]) for i in range(len(split))], dtype=np.int64)


def stratified_subset(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Positions of `size` items with the class proportions of `labels`, in their original order.

    Each class gets its share of `size`, rounded by largest remainders (ties go to the
    class listed first); a class whose share rounds to nothing still gets one item, taken
    from the class with the most. Within a class the items are drawn with `seed`, so the
    subset depends on the labels, `size` and `seed` alone.

    Args:
        labels: One integer label per item.
        size: Items to keep, from the number of classes to ``len(labels)``.
        seed: Seed of the draw within each class.

    Raises:
        ValueError: for a size outside that range.
    """
    classes, counts = np.unique(labels, return_counts=True)
    if not len(classes) <= size <= len(labels):
        raise ValueError(f"size={size} must be in {len(classes)}..{len(labels)} (classes..items)")
    share = counts * size / len(labels)
    quota = np.floor(share).astype(np.int64)
    largest_remainders = np.lexsort((np.arange(len(classes)), quota - share))
    quota[largest_remainders[: size - int(quota.sum())]] += 1
    for empty in np.flatnonzero(quota == 0):
        quota[np.argmax(quota)] -= 1
        quota[empty] = 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


class ArrayItems(Dataset):
    """Images held in one in-memory array, with integer labels, untransformed."""

    def __init__(self, images: torch.Tensor | np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.images[index], int(self.labels[index])


class SplitView(Dataset):
    """A split of a base data set: chosen indices, each image passed through ``transform``.

    Not ``torch.utils.data.Subset``: its batched ``__getitems__`` would bypass the transform.

    Attributes:
        dataset: The base data set, returning ``(image, label)``.
        indices: Positions in ``dataset`` that make up this split.
        transform: Applied to each image; None leaves it as the base returns it.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int],
                 transform: Callable[[Any], torch.Tensor] | None = None) -> None:
        self.dataset = dataset
        self.indices = indices
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[self.indices[index]]
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def stratified_split(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int,
                      part: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held-out ``fraction``), stratified by label."""
    try:
        kept, held = train_test_split(indices, test_size=fraction, stratify=labels[indices],
                                      random_state=seed)
    except ValueError as err:
        n_classes = len(np.unique(labels[indices]))
        raise ConfigError(
            f"cannot hold out a stratified {part} split of {fraction} from {len(indices)} images "
            f"of {n_classes} classes (each class needs images on both sides): {err}") from err
    return np.sort(kept), np.sort(held)


def train_val_test(labels: np.ndarray, spec: DatasetSpec) -> tuple[np.ndarray, ...]:
    """Indices of train, val and test when one pool holds all images: test first, then val."""
    train_val, test = stratified_split(np.arange(len(labels)), labels, spec.test_fraction,
                                        spec.seed, "test")
    train, val = stratified_split(train_val, labels, spec.val_fraction, spec.seed, "val")
    return train, val, test


def mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a [N, C, H, W] batch in [0, 1]."""
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    # A constant channel carries no information; leave it unscaled rather than divide by zero.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())
