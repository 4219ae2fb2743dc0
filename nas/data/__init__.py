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
  the split sizes, the class count, the image shape, every training label and the stored
  bytes of every training sample, so another data set of the same shape, another split seed
  or any edited training image gets another fingerprint. Event data sets hash a fixed sample
  of 32 training samples instead (their downloads are checked by md5).
"""

from __future__ import annotations

from collections.abc import Callable

from ..dataspec import DatasetSpec
from .cifar import load_cifar
from .digits import load_digits
from .events import EVENTS, event_loader, load_events
from .folders import load_folder
from .splits import DataSplits, fingerprint, fingerprint_matches, legacy_fingerprint, split_labels, stratified_subset

__all__ = ["DataSplits", "event_loader", "fingerprint", "fingerprint_matches", "legacy_fingerprint", "load_dataset",
           "split_labels", "stratified_subset"]

_LOADERS: dict[str, Callable[[DatasetSpec], DataSplits]] = {
    "digits": load_digits,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
    "folder": load_folder,
    **{name: load_events for name in EVENTS},
}


def load_dataset(spec: DatasetSpec) -> DataSplits:
    """Load and split the data set that ``spec`` names.

    Raises:
        FileNotFoundError: CIFAR files are missing and ``spec.download`` is off, or an event
            data set's downloaded files are missing or not the publisher's.
        ConfigError: The folder tree is missing or malformed, a split cannot be stratified,
            or an event data set has no ``spec.frames``.
    """
    return _LOADERS[spec.name](spec)
