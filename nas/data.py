"""Data sets for supernet training and subnet scoring: digits, CIFAR-10/100, image folders and
the event-camera sets N-MNIST, CIFAR10-DVS and DVS128 Gesture.

Every data set is split four ways: ``train`` (augmented, for supernet training),
``train_eval`` (the same images without augmentation, for BN recalibration), ``val`` (carved
from the training data, scored by the search) and ``test`` (final reports only). Every item is
``(float32 tensor [C, H, W], normalised, int label)`` for images, and ``(float32 tensor
[F, 2, H, W], int label)`` for event data: F frames of event counts per polarity, integrated by
spikingjelly's own loaders (``frames_number=F``, ``split_by="number"``: each frame holds an
equal share of the sample's events) and cached by them beside the raw files.

Choices where the design is silent:

- All splits are stratified with scikit-learn's ``train_test_split`` and ``spec.seed``, and
  each split lists its images in their original order.
- Normalisation statistics come from the ``train`` split only (digits, folders); CIFAR uses the
  published constants (Spikformer's CIFAR normalisation).
- Digits are augmented by a random shift of up to one pixel; the pixels shifted in are the
  (normalised) black background.
- A folder tree with both ``test/`` and ``val/`` next to ``train/`` uses ``test/`` as the test
  split; ``val/`` is not read, because the search's validation split is always carved from
  the training data.
- A folder's default ``img_size`` is the shorter side of its first training image; every image
  is resized to that square.
- Event frames are not normalised: they stay event counts, which the first conv reads as
  spikes (`models.SupernetConfig.event_input`). Their side is centre-cropped to a multiple
  of 8 (N-MNIST: 34 -> 32; CIFAR10-DVS and DVS128 Gesture stay 128). Training frames get a
  random horizontal flip and a random roll (shift with wrap-around) of up to 1/8 of the side
  in each direction, the same for every frame of a sample.
- N-MNIST and DVS128 Gesture keep their publishers' train/test split; CIFAR10-DVS has none,
  so its test split is a stratified `test_fraction` of it, as for digits. Gesture labels are
  the gesture numbers minus one (spikingjelly's folder order sorts "10" before "2").
- `fingerprint` tells loaded data sets apart (checkpoints and studies store it): it hashes
  the split sizes, the class count, the image shape, every training label and the pixels of
  a fixed sample of training images, so another data set of the same shape, another split
  seed or an edited folder gets another fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from models import ConfigError, InputTransform

from .dataspec import DatasetSpec

_GRAYSCALE_MODES = ("1", "L", "LA")
_MAX_STAT_IMAGES = 500
_FOLDER_TEST_NAMES = ("test", "val")
_FINGERPRINT_IMAGES = 32
_DIGITS_MAX = 16.0
"""scikit-learn's digits hold pixel values 0..16."""
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


def load_dataset(spec: DatasetSpec) -> DataSplits:
    """Load and split the data set that ``spec`` names.

    Raises:
        FileNotFoundError: CIFAR files are missing and ``spec.download`` is off, or an event
            data set's downloaded files are missing or not the publisher's.
        ConfigError: The folder tree is missing or malformed, a split cannot be stratified,
            or an event data set has no ``spec.frames``.
    """
    return _LOADERS[spec.name](spec)


def fingerprint(splits: DataSplits) -> str:
    """A short hash of the data in `splits`, the same for the same data on any machine.

    It covers the sizes of the splits, the class count, the image shape, every training
    label (in split order) and the pixels of up to 32 training images spread evenly over
    the split. Reading it costs a pass over the labels and those few images.

    Args:
        splits: A data set as `load_dataset` returns it.

    Returns:
        16 hexadecimal digits.
    """
    train = splits.train_eval
    digest = hashlib.sha256()
    shape = [len(train), len(splits.val), len(splits.test), splits.num_classes, splits.in_channels, splits.img_size]
    digest.update(json.dumps(shape).encode())
    digest.update(_labels(train).astype("<i8").tobytes())
    mean = torch.tensor(splits.mean).view(-1, 1, 1)
    std = torch.tensor(splits.std).view(-1, 1, 1)
    for index in np.unique(np.linspace(0, len(train) - 1, num=min(len(train), _FINGERPRINT_IMAGES)).round()):
        image, _ = train[int(index)]
        pixels = torch.round((image * std + mean) * _PIXEL_STEPS).to(torch.int32)
        digest.update(pixels.numpy().astype("<i4").tobytes())
    return digest.hexdigest()[:16]


def _labels(split: _SplitView) -> np.ndarray:
    """The labels of `split`, in order; read from the base data set, not image by image."""
    base = split.dataset
    labels = base.labels if isinstance(base, _ArrayItems) else base.targets
    return np.asarray(labels, dtype=np.int64)[np.asarray(split.indices, dtype=np.int64)]


def split_labels(split: Dataset) -> np.ndarray:
    """The labels of `split`, in order.

    A split made by `load_dataset` reads them from its base data set; any other data set
    is read item by item, which loads its images once.
    """
    if isinstance(split, _SplitView):
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


class _ArrayItems(Dataset):
    """Images held in one in-memory array, with integer labels, untransformed."""

    def __init__(self, images: torch.Tensor | np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.images[index], int(self.labels[index])


class _SplitView(Dataset):
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


class _RandomShift:
    """Translate a [C, H, W] tensor by up to ``max_shift`` pixels, filling with ``fill``."""

    def __init__(self, max_shift: int, fill: Sequence[float]) -> None:
        self.max_shift = max_shift
        self.fill = torch.tensor(fill, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        s = self.max_shift
        c, h, w = image.shape
        top, left = torch.randint(0, 2 * s + 1, (2,)).tolist()
        padded = self.fill.expand(c, h + 2 * s, w + 2 * s).clone()
        padded[:, s:s + h, s:s + w] = image
        return padded[:, top:top + h, left:left + w]


def _stratified_split(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int,
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


def _train_val_test(labels: np.ndarray, spec: DatasetSpec) -> tuple[np.ndarray, ...]:
    """Indices of train, val and test when one pool holds all images: test first, then val."""
    train_val, test = _stratified_split(np.arange(len(labels)), labels, spec.test_fraction,
                                        spec.seed, "test")
    train, val = _stratified_split(train_val, labels, spec.val_fraction, spec.seed, "val")
    return train, val, test


def _mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a [N, C, H, W] batch in [0, 1]."""
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3))
    # A constant channel carries no information; leave it unscaled rather than divide by zero.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def _load_digits(spec: DatasetSpec) -> DataSplits:
    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    train, val, test = _train_val_test(labels, spec)
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / _DIGITS_MAX
    mean, std = _mean_std(images[train])
    mean_t = torch.tensor(mean).view(-1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1)
    base = _ArrayItems((images - mean_t) / std_t, labels)
    black = tuple(((0.0 - mean_t) / std_t).flatten().tolist())
    return DataSplits(
        train=_SplitView(base, train, _RandomShift(1, black)),
        train_eval=_SplitView(base, train),
        val=_SplitView(base, val),
        test=_SplitView(base, test),
        in_channels=1, img_size=8, num_classes=10, mean=mean, std=std, pixel_max=_DIGITS_MAX,
        classes=tuple(str(name) for name in bunch.target_names),
    )


@dataclass(frozen=True)
class _CifarLayout:
    """Where torchvision's python-pickle CIFAR release keeps its files and labels."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    meta_file: str
    names_key: bytes
    torchvision_class: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_CIFAR = {
    "cifar10": _CifarLayout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key=b"labels",
        meta_file="batches.meta",
        names_key=b"label_names",
        torchvision_class="CIFAR10",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": _CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key=b"fine_labels",
        meta_file="meta",
        names_key=b"fine_label_names",
        torchvision_class="CIFAR100",
        num_classes=100,
        mean=(0.5071, 0.4867, 0.4408),
        std=(0.2675, 0.2565, 0.2761),
    ),
}


def _missing_cifar_files(root: str, layout: _CifarLayout) -> list[str]:
    paths = [os.path.join(root, layout.folder, f) for f in layout.train_files + layout.test_files]
    return [p for p in paths if not os.path.isfile(p)]


def _read_cifar_files(root: str, layout: _CifarLayout,
                      names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read pickled CIFAR batches into uint8 [N, 32, 32, 3] images and int64 labels."""
    images, labels = [], []
    for name in names:
        with open(os.path.join(root, layout.folder, name), "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[layout.label_key], dtype=np.int64))
    # Stored channel-first; PIL wants height x width x channels.
    return np.ascontiguousarray(np.concatenate(images).transpose(0, 2, 3, 1)), np.concatenate(labels)


def _cifar_classes(root: str, layout: _CifarLayout) -> tuple[str, ...] | None:
    """The class names the release's meta file lists, or None without that file."""
    path = os.path.join(root, layout.folder, layout.meta_file)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        names = pickle.load(f, encoding="bytes")[layout.names_key]
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _ensure_cifar_files(spec: DatasetSpec, layout: _CifarLayout) -> None:
    """Fetch the CIFAR release if allowed and needed; fail with the expected path otherwise."""
    root = str(spec.root)
    missing = _missing_cifar_files(root, layout)
    if missing and spec.download:
        getattr(datasets, layout.torchvision_class)(root, train=True, download=True)
        missing = _missing_cifar_files(root, layout)
    if missing:
        raise FileNotFoundError(
            f"{spec.name} files not found: expected {missing[0]}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} under "
            f"{os.path.join(root, layout.folder)}; pass download=True (--download on the CLI) "
            f"or place the python-pickle release there")


def _cifar_train_transform(mean: tuple[float, ...], std: tuple[float, ...]) -> transforms.Compose:
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


def _load_cifar(spec: DatasetSpec) -> DataSplits:
    layout = _CIFAR[spec.name]
    _ensure_cifar_files(spec, layout)
    root = str(spec.root)
    train_images, train_labels = _read_cifar_files(root, layout, layout.train_files)
    test_images, test_labels = _read_cifar_files(root, layout, layout.test_files)
    train, val = _stratified_split(np.arange(len(train_labels)), train_labels, spec.val_fraction,
                                   spec.seed, "val")
    mean, std = layout.mean, layout.std
    evaluate = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    train_base = _ArrayItems(train_images, train_labels)
    return DataSplits(
        train=_SplitView(train_base, train, _cifar_train_transform(mean, std)),
        train_eval=_SplitView(train_base, train, evaluate),
        val=_SplitView(train_base, val, evaluate),
        test=_SplitView(_ArrayItems(test_images, test_labels),
                       np.arange(len(test_labels)), evaluate),
        in_channels=3, img_size=32, num_classes=layout.num_classes, mean=mean, std=std,
        classes=_cifar_classes(root, layout),
    )


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


def _load_folder(spec: DatasetSpec) -> DataSplits:
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
        train, val, test = _train_val_test(labels, spec)
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
        train, val = _stratified_split(np.arange(len(labels)), labels, spec.val_fraction,
                                       spec.seed, "val")
        test = np.arange(len(test_base))

    resize = transforms.Resize((img_size, img_size))
    stat_view = _SplitView(train_base, _stat_sample(train, spec.seed),
                          transforms.Compose([resize, transforms.ToTensor()]))
    mean, std = _mean_std(torch.stack([stat_view[i][0] for i in range(len(stat_view))]))
    normalise = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    evaluate = transforms.Compose([resize, *normalise])
    augment = transforms.Compose([
        resize,
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(img_size, padding=img_size // 8),
        *normalise,
    ])
    return DataSplits(
        train=_SplitView(train_base, train, augment),
        train_eval=_SplitView(train_base, train, evaluate),
        val=_SplitView(train_base, val, evaluate),
        test=_SplitView(test_base, test, evaluate),
        in_channels=1 if mode == "L" else 3, img_size=img_size,
        num_classes=len(train_base.classes), mean=mean, std=std, classes=tuple(train_base.classes),
    )


def _stat_sample(train: np.ndarray, seed: int) -> np.ndarray:
    """Up to ``_MAX_STAT_IMAGES`` training indices: enough for stable channel statistics."""
    if len(train) <= _MAX_STAT_IMAGES:
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=_MAX_STAT_IMAGES, replace=False))


@dataclass(frozen=True)
class _EventLayout:
    """An event-camera data set: its spikingjelly loader and what that loader reads."""

    module: str
    loader: str
    num_classes: int
    has_split: bool


_EVENTS = {
    "n-mnist": _EventLayout(module="n_mnist", loader="NMNIST", num_classes=10, has_split=True),
    "cifar10-dvs": _EventLayout(module="cifar10_dvs", loader="CIFAR10DVS", num_classes=10, has_split=False),
    "dvs128-gesture": _EventLayout(module="dvs128_gesture", loader="DVS128Gesture", num_classes=11, has_split=True),
}


def event_loader(name: str) -> type:
    """spikingjelly's loader class of the event data set `name` (``n-mnist``, ``cifar10-dvs``,
    ``dvs128-gesture``)."""
    import importlib

    layout = _EVENTS[name]
    return getattr(importlib.import_module(f"spikingjelly.datasets.{layout.module}"), layout.loader)


def _check_event_files(name: str, root: str) -> None:
    """Fail with the expected layout unless `root` holds the publisher's files (or spikingjelly's
    converted cache of them): the loader would otherwise try to download them, or delete a
    file whose checksum differs."""
    from torchvision.datasets.utils import check_integrity

    marker = os.path.join(root, "events_np.building")
    if os.path.exists(marker):
        raise ConfigError(f"an earlier conversion of {name} under {root} did not finish: remove {marker} and "
                          f"the folders {os.path.join(root, 'extract')} and {os.path.join(root, 'events_np')}, "
                          "then run again")
    if os.path.isdir(os.path.join(root, "events_np")):
        return  # converted before: spikingjelly reads the cache and not the downloads
    download = os.path.join(root, "download")
    expected = event_loader(name).resource_url_md5()
    missing = [f for f, _, _ in expected if not os.path.isfile(os.path.join(download, f))]
    if missing:
        raise FileNotFoundError(
            f"{name} files not found under {download}: missing {missing}; download the data set from its "
            f"publisher and put these files there unchanged: {[f for f, _, _ in expected]}")
    corrupt = [f for f, _, md5 in expected if not check_integrity(os.path.join(download, f), md5)]
    if corrupt:
        raise FileNotFoundError(
            f"{name} files under {download} are not the publisher's (md5 differs): {corrupt}; download them again")


class _EventItems(Dataset):
    """A spikingjelly frame data set with our labels (``targets``)."""

    def __init__(self, frames: Dataset, targets: np.ndarray, classes: tuple[str, ...]) -> None:
        self.frames = frames
        self.targets = targets
        self.classes = classes

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames, _ = self.frames[index]
        return torch.as_tensor(np.asarray(frames), dtype=torch.float32), int(self.targets[index])


def _event_items(frames: Dataset) -> _EventItems:
    """Labels in class order: class folders named by numbers (N-MNIST digits, gestures 1-11)
    take the order of the numbers, others spikingjelly's (alphabetical)."""
    targets = np.asarray(frames.targets, dtype=np.int64)
    classes = list(frames.classes)
    if all(c.isdigit() for c in classes):
        order = np.argsort(np.argsort([int(c) for c in classes]))
        targets = order[targets]
        classes = sorted(classes, key=int)
    return _EventItems(frames, targets, tuple(classes))


class _CentreCrop:
    """Crop the last two axes to `size` x `size` around the centre."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2:]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return frames[..., top:top + self.size, left:left + self.size]


class _FlipRoll:
    """A random horizontal flip and a random roll of up to `max_shift` pixels along each of
    the last two axes, the same for every frame of the sequence."""

    def __init__(self, max_shift: int) -> None:
        self.max_shift = max_shift

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) < 0.5:
            frames = frames.flip(-1)
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
        return torch.roll(frames, shifts=shifts, dims=(-2, -1))


def _load_events(spec: DatasetSpec) -> DataSplits:
    layout = _EVENTS[spec.name]
    root = str(spec.root)
    _check_event_files(spec.name, root)
    if spec.frames is None:
        raise ConfigError(f"{spec.name}: give the frames per sample (DatasetSpec.frames, --frames); training uses "
                          "the search space's largest T")
    loader = event_loader(spec.name)
    options = {"data_type": "frame", "frames_number": spec.frames, "split_by": "number"}
    if layout.has_split:
        train_base = _event_items(loader(root, train=True, **options))
        test_base = _event_items(loader(root, train=False, **options))
        labels = train_base.targets
        train, val = _stratified_split(np.arange(len(labels)), labels, spec.val_fraction, spec.seed, "val")
        test = np.arange(len(test_base))
    else:
        train_base = test_base = _event_items(loader(root, **options))
        train, val, test = _train_val_test(train_base.targets, spec)
    frames, _ = train_base[0]
    _, channels, height, width = frames.shape
    side = min(height, width) // 8 * 8
    evaluate = _CentreCrop(side)
    augment = transforms.Compose([evaluate, _FlipRoll(max(1, side // 8))])
    return DataSplits(
        train=_SplitView(train_base, train, augment),
        train_eval=_SplitView(train_base, train, evaluate),
        val=_SplitView(train_base, val, evaluate),
        test=_SplitView(test_base, test, evaluate),
        in_channels=channels, img_size=side, num_classes=layout.num_classes,
        mean=(0.0,) * channels, std=(1.0,) * channels, frames=spec.frames, pixel_max=None,
        classes=train_base.classes,
    )


_LOADERS: dict[str, Callable[[DatasetSpec], DataSplits]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar,
    "cifar100": _load_cifar,
    "folder": _load_folder,
    **{name: _load_events for name in _EVENTS},
}
