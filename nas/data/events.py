"""Event-camera data sets through spikingjelly's loaders: N-MNIST, CIFAR10-DVS and DVS128
Gesture, integrated into frames of event counts per polarity."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms

from models import ConfigError

from ..dataspec import DatasetSpec
from .splits import DataSplits, SplitView, stratified_split, train_val_test


@dataclass(frozen=True)
class _EventLayout:
    """An event-camera data set: its spikingjelly loader and what that loader reads."""

    module: str
    loader: str
    num_classes: int
    has_split: bool


EVENTS = {
    "n-mnist": _EventLayout(module="n_mnist", loader="NMNIST", num_classes=10, has_split=True),
    "cifar10-dvs": _EventLayout(module="cifar10_dvs", loader="CIFAR10DVS", num_classes=10, has_split=False),
    "dvs128-gesture": _EventLayout(module="dvs128_gesture", loader="DVS128Gesture", num_classes=11, has_split=True),
}


def event_loader(name: str) -> type:
    """spikingjelly's loader class of the event data set `name` (``n-mnist``, ``cifar10-dvs``,
    ``dvs128-gesture``)."""
    layout = EVENTS[name]
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


def load_events(spec: DatasetSpec) -> DataSplits:
    layout = EVENTS[spec.name]
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
        train, val = stratified_split(np.arange(len(labels)), labels, spec.val_fraction, spec.seed, "val")
        test = np.arange(len(test_base))
    else:
        train_base = test_base = _event_items(loader(root, **options))
        train, val, test = train_val_test(train_base.targets, spec)
    frames, _ = train_base[0]
    _, channels, height, width = frames.shape
    side = min(height, width) // 8 * 8
    evaluate = _CentreCrop(side)
    augment = transforms.Compose([evaluate, _FlipRoll(max(1, side // 8))])
    return DataSplits(
        train=SplitView(train_base, train, augment),
        train_eval=SplitView(train_base, train, evaluate),
        val=SplitView(train_base, val, evaluate),
        test=SplitView(test_base, test, evaluate),
        in_channels=channels, img_size=side, num_classes=layout.num_classes,
        mean=(0.0,) * channels, std=(1.0,) * channels, frames=spec.frames, pixel_max=None,
        classes=train_base.classes,
    )
