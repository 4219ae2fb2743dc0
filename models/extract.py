"""Standalone subnets cut out of the supernet."""

from __future__ import annotations

import torch

from .config import SubnetConfig
from .spikformer import Spikformer, SpikformerSupernet


def extract_subnet(net: SpikformerSupernet, config: SubnetConfig) -> Spikformer:
    """A standalone `Spikformer` of `config` holding copies of the supernet's weights.

    Every weight-entangled tensor is a leading slice of the supernet's, so each tensor of
    the standalone model is the supernet tensor cut to its shape. BN running statistics
    are copied too: recalibrate the supernet under `config` first for a faithful copy.

    Raises:
        ValueError: if `config` does not fit the supernet.
    """
    config.validate(net.supernet_cfg)
    model = Spikformer(net.supernet_cfg, config)
    source = net.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            full = source[name]
            tensor.copy_(full[tuple(slice(0, size) for size in tensor.shape)])
    return model.train(net.training).to(next(net.parameters()).device)
