"""scikit-learn's digits: 1,797 8x8 grey images of 10 classes, embedded in the library."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.datasets import load_digits as _sklearn_digits

from ..dataspec import DatasetSpec
from .splits import ArrayItems, DataSplits, SplitView, array_content, mean_std, train_val_test

DIGITS_MAX = 16.0
"""scikit-learn's digits hold pixel values 0..16."""


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


def load_digits(spec: DatasetSpec) -> DataSplits:
    bunch = _sklearn_digits()
    labels = bunch.target.astype(np.int64)
    train, val, test = train_val_test(labels, spec)
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / DIGITS_MAX
    mean, std = mean_std(images[train])
    mean_t = torch.tensor(mean).view(-1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1)
    base = ArrayItems((images - mean_t) / std_t, labels)
    black = tuple(((0.0 - mean_t) / std_t).flatten().tolist())
    return DataSplits(
        train=SplitView(base, train, _RandomShift(1, black)),
        train_eval=SplitView(base, train),
        val=SplitView(base, val),
        test=SplitView(base, test),
        in_channels=1, img_size=8, num_classes=10, mean=mean, std=std, pixel_max=DIGITS_MAX,
        classes=tuple(str(name) for name in bunch.target_names),
        train_content=array_content(bunch.images.astype(np.uint8), train),
    )
