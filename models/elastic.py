"""Weight-entangled (elastic) layers.

Each layer wraps one full-size torch layer. Its input width is read off the input tensor;
its output width is set once per subnet with `active_out`. Inside `forward` it slices
the first rows / columns / channels of the live parameters, so every subnet trains the
same storage and no slice is ever cached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def leading(tensor: torch.Tensor | None, size: int, dim: int = 0) -> torch.Tensor | None:
    """The first `size` entries of `tensor` along `dim`: the tensor itself at its full size.

    Slicing at the full size would still record a view and, under autograd, a slice backward
    (two more kernels per parameter and step), so the full-size subnet uses the parameters as they are.
    """
    if tensor is None or tensor.shape[dim] == size:
        return tensor
    return tensor.narrow(dim, 0, size)


class ElasticLinear(nn.Linear):
    """`nn.Linear` that runs on its first `active_out` rows and the input's width."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.active_out = out_features

    def get_active_weight(self, in_features: int) -> torch.Tensor:
        return leading(leading(self.weight, self.active_out), in_features, dim=1)

    def get_active_bias(self) -> torch.Tensor | None:
        return leading(self.bias, self.active_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.get_active_weight(x.shape[-1]), self.get_active_bias())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", active_out={self.active_out}"


class ElasticConv2d(nn.Conv2d):
    """`nn.Conv2d` that runs on its first `active_out` filters and the input's channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        if self.groups != 1:
            raise ValueError("ElasticConv2d supports groups=1 only")
        self.active_out = out_channels

    def get_active_weight(self, in_channels: int) -> torch.Tensor:
        return leading(leading(self.weight, self.active_out), in_channels, dim=1)

    def get_active_bias(self) -> torch.Tensor | None:
        return leading(self.bias, self.active_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.get_active_weight(x.shape[1]), self.get_active_bias())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", active_out={self.active_out}"


class _ElasticBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the input's first C channels of the full-size statistics.

    Running statistics are kept (and updated in place through the slice) so that a
    subnet's statistics can be recalibrated and then used in eval mode.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        c = x.shape[1]
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            leading(self.running_mean, c) if track else None,
            leading(self.running_var, c) if track else None,
            leading(self.weight, c),
            leading(self.bias, c),
            use_batch_stats,
            factor,
            self.eps,
        )


class ElasticBatchNorm1d(_ElasticBatchNorm, nn.BatchNorm1d):
    """Elastic `nn.BatchNorm1d` (channels on dim 1 of an (M, C) or (M, C, L) input)."""


class ElasticBatchNorm2d(_ElasticBatchNorm, nn.BatchNorm2d):
    """Elastic `nn.BatchNorm2d`."""
