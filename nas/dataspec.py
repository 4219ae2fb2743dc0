"""Which data set to load and how to split it: light to import (no torch), stored with studies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from models import ConfigError

EVENT_DATASETS: tuple[str, ...] = ("n-mnist", "cifar10-dvs", "dvs128-gesture")
"""Event-camera data sets, read from their publishers' files by spikingjelly's loaders."""

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "folder", *EVENT_DATASETS)

_NEEDS_ROOT = ("cifar10", "cifar100", "folder", *EVENT_DATASETS)


@dataclass(frozen=True)
class DatasetSpec:
    """Which data set to load and how to split it; stored with a study so it can be rebuilt.

    Attributes:
        name: One of ``DATASETS``.
        root: Folder holding the CIFAR files, the image-folder tree, or an event data set's
            ``download/`` folder of publisher files; ignored for digits.
        val_fraction: Fraction of the training data carved out as the validation split.
        test_fraction: Fraction held out as the test split; digits, CIFAR10-DVS and a folder
            tree without its own test split only.
        seed: Seed of the split.
        download: CIFAR only: fetch missing files with torchvision.
        img_size: Folder only: resize to this square size; default: the first image's size.
        frames: Event data sets only: frames integrated per sample; training sets it to the
            search space's largest T when it is None.
    """

    name: str
    root: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 0
    download: bool = False
    img_size: int | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise ConfigError(f"unknown data set {self.name!r}; choose from {list(DATASETS)}")
        if self.name in _NEEDS_ROOT and not self.root:
            raise ConfigError(f"data set {self.name!r} needs a root folder (root=None was given)")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"{key}={value} is outside the allowed range 0 < {key} < 1")
        if self.img_size is not None and self.img_size < 1:
            raise ConfigError(f"img_size={self.img_size} must be a positive number of pixels or None")
        if self.frames is not None and (self.name not in EVENT_DATASETS or self.frames < 1):
            raise ConfigError(f"frames={self.frames}: frames per sample are a positive number, for the event data "
                              f"sets {list(EVENT_DATASETS)} only")

    def describe(self) -> str:
        """The data set in a few words for messages: name, folder (if it has one) and split seed."""
        where = f" {self.root}" if self.root and self.name in _NEEDS_ROOT else ""
        frames = f", {self.frames} frames" if self.frames is not None else ""
        return f"{self.name}{where}{frames}, split seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-friendly values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSpec:
        """Rebuild a spec from ``to_dict`` output.

        Raises:
            ConfigError: If ``d`` has keys a spec does not know, or lacks ``name``.
        """
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown DatasetSpec key(s) {unknown}; allowed keys: {allowed}")
        if "name" not in d:
            raise ConfigError(f"a DatasetSpec needs 'name'; choose from {list(DATASETS)}")
        return cls(**d)
