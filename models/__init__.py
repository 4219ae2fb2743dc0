"""The Spikformer supernet: elastic layers, spiking neurons, subnet configs and extraction.

This package stands alone: it imports nothing from `energy`, `nas` or `studies`.
"""

from .config import (
    BLOCK_GENES,
    GLOBAL_GENES,
    THRESHOLD_SCOPES,
    SubnetConfig,
    SupernetConfig,
    count_params,
)
from .extract import extract_subnet
from .spikformer import (
    AttentionProduct,
    Spikformer,
    SpikformerBlock,
    SpikformerSupernet,
    SpikingMLP,
    SpikingPatchSplitting,
    SpikingSelfAttention,
)

__all__ = [
    "BLOCK_GENES",
    "GLOBAL_GENES",
    "THRESHOLD_SCOPES",
    "AttentionProduct",
    "Spikformer",
    "SpikformerBlock",
    "SpikformerSupernet",
    "SpikingMLP",
    "SpikingPatchSplitting",
    "SpikingSelfAttention",
    "SubnetConfig",
    "SupernetConfig",
    "count_params",
    "extract_subnet",
]
