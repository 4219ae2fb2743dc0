"""What an exported model expects: raw images (or event frames) in, model input tensors out.

An `InputTransform` holds everything the data pipeline did to an image before the model saw
it, so that an exported subnet runs on data read anywhere, without autospk's data code:

- **Images** are taken raw, as they are read: a PIL image, or an array or tensor of pixel
  values, whole numbers from 0 to ``pixel_max`` (16 for scikit-learn's digits, 255 for 8-bit
  images), laid out ``[H, W]`` (one channel), ``[C, H, W]`` or ``[H, W, C]``. A PIL image is
  converted to the model's colour mode (``L`` or ``RGB``) and resized to ``img_size`` squared
  (bilinear), as the image-folder pipeline does; an array must have the model's size
  already. Pixels are divided by ``pixel_max`` and normalised with the training split's
  ``mean`` and ``std``; the result is ``[C, H, W]`` float32. The model shows the image at
  each of its ``time_steps`` steps itself.
- **Event frames** are taken as spikingjelly's loaders integrate them: ``[F, C, H, W]`` event
  counts with F = ``frames``. They are centre-cropped to ``img_size`` and not normalised (the
  first layer reads them as spikes); the model sums the F frames into its T steps.

Raw pixels and event counts are whole numbers: the transform refuses anything else, so an
image already scaled to [0, 1] or normalised (which the model would misread) fails with
a message instead of scoring at chance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ConfigError


@dataclass(frozen=True)
class InputTransform:
    """Raw image (or event frames) -> the input tensor of one sample for an exported model.

    Call it on one sample; stack the results for a batch. See the module doc for what it accepts.

    Attributes:
        in_channels: Image channels (2 polarities for event data).
        img_size: Side of the square input the model reads.
        time_steps: T, the model's time steps (for information; the model repeats an image
            over them, or integrates event frames into them, itself).
        mean: Per-channel mean subtracted after scaling to [0, 1] (images only).
        std: Per-channel standard deviation divided by after that (images only).
        pixel_max: The raw pixel value of full intensity (images only; None for event data).
        frames: Event data: frames per sample; None for images.
        classes: Class names, index = label; None where the data set has none.
    """

    in_channels: int
    img_size: int
    time_steps: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    pixel_max: float | None = 255.0
    frames: int | None = None
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.frames is None:
            if self.pixel_max is None or self.pixel_max <= 0:
                raise ConfigError(f"InputTransform.pixel_max={self.pixel_max!r}: images need the raw value of full "
                                  "intensity, > 0 (e.g. 255)")
            if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
                raise ConfigError(f"InputTransform: mean {self.mean} and std {self.std} need one value per channel "
                                  f"({self.in_channels})")
            if min(self.std) <= 0:
                raise ConfigError(f"InputTransform.std={self.std} must be > 0 in every channel")
        elif self.frames < self.time_steps:
            raise ConfigError(f"InputTransform.frames={self.frames} cannot feed time_steps={self.time_steps}")

    @property
    def event_input(self) -> bool:
        """Whether the model reads event frames rather than static images."""
        return self.frames is not None

    def __call__(self, raw: Any) -> torch.Tensor:
        """The model input of one raw sample: ``[C, H, W]`` for an image, ``[F, C, H, W]`` for events.

        Raises:
            ValueError: for a sample of another shape, or values that are not raw pixels or
                event counts (whole numbers in range).
        """
        return self._events(raw) if self.event_input else self._image(raw)

    def _image(self, raw: Any) -> torch.Tensor:
        side, channels = self.img_size, self.in_channels
        if _is_pil_image(raw):
            raw = raw.convert("L" if channels == 1 else "RGB")
            if raw.size != (side, side):
                from PIL import Image

                raw = raw.resize((side, side), Image.BILINEAR)
        x = raw.detach().cpu() if isinstance(raw, torch.Tensor) else torch.as_tensor(np.array(raw))
        if x.ndim == 2 and channels == 1:
            x = x.unsqueeze(0)
        elif x.ndim == 3 and x.shape[0] != channels and x.shape[-1] == channels:
            x = x.permute(2, 0, 1)
        if x.ndim != 3 or tuple(x.shape) != (channels, side, side):
            raise ValueError(f"expected one image of {channels} channel{'s' if channels > 1 else ''} and "
                             f"{side}x{side} pixels ([C, H, W], [H, W, C]{' or [H, W]' if channels == 1 else ''}), "
                             f"got shape {tuple(x.shape)}; pass a PIL image to have it converted and resized")
        x = x.to(torch.float32)
        _check_whole(x, self.pixel_max, what=f"raw pixel values, whole numbers from 0 to {self.pixel_max:g}")
        x = x / self.pixel_max
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (x - mean) / std

    def _events(self, raw: Any) -> torch.Tensor:
        x = (raw.detach().cpu() if isinstance(raw, torch.Tensor) else torch.as_tensor(np.array(raw))).to(torch.float32)
        shape = (self.frames, self.in_channels)
        if x.ndim != 4 or tuple(x.shape[:2]) != shape or min(x.shape[2:]) < self.img_size:
            raise ValueError(f"expected event frames [F, C, H, W] with F={self.frames} frames, C={self.in_channels} "
                             f"polarities and sides of at least {self.img_size}, got shape {tuple(x.shape)}")
        _check_whole(x, None, what="event counts, whole numbers >= 0")
        h, w = x.shape[-2:]
        top, left = (h - self.img_size) // 2, (w - self.img_size) // 2
        return x[..., top:top + self.img_size, left:left + self.img_size]

    def describe(self) -> str:
        """What the transform expects and does, in one line."""
        if self.event_input:
            return (f"event frames [{self.frames}, {self.in_channels}, H, W] of counts, centre-cropped to "
                    f"{self.img_size}x{self.img_size}, integrated into T={self.time_steps} steps")
        return (f"raw {self.in_channels}x{self.img_size}x{self.img_size} images, pixels 0..{self.pixel_max:g}, "
                f"scaled to [0, 1], normalised with mean {_rounded(self.mean)} std {_rounded(self.std)}, "
                f"repeated over T={self.time_steps} time steps")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for tuples), for JSON and ``torch.load(weights_only=True)``."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputTransform:
        """Rebuild a transform from `to_dict` output.

        Raises:
            ConfigError: for unknown or missing keys.
        """
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING]
        if unknown or missing:
            raise ConfigError(f"input transform: unknown keys {unknown}, missing keys {missing}; allowed: {allowed}")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        return cls(**values)


def _is_pil_image(raw: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(raw, Image.Image)


def _check_whole(x: torch.Tensor, upper: float | None, *, what: str) -> None:
    """Refuse values that are not whole numbers in ``[0, upper]``: the sample was scaled or normalised already."""
    low, high = x.min().item(), x.max().item()
    whole = bool(torch.isfinite(x).all()) and bool((x == x.round()).all())
    if whole and low >= 0 and (upper is None or high <= upper):
        return
    found = f"values from {low:.4g} to {high:.4g}" + ("" if whole else ", not all whole numbers")
    if upper is None:
        raise ValueError(f"expected {what}; got {found}. Pass the frames as spikingjelly's loaders integrate them")
    raise ValueError(f"expected {what}; got {found}. Pass the sample as it was read: the transform scales and "
                     "normalises it (a sample scaled to [0, 1] or normalised already would be misread)")


def _rounded(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
