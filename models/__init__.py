"""The Spikformer supernet: elastic layers, spiking neurons, subnet configs, extraction, and
exported subnets with their input transform (`load_exported`).

This package stands alone: it imports nothing from `energy`, `nas` or `studies`. Names load
on first use, so code that needs only the configs (the command line's ``--help``) does not
import torch.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "config": ["BLOCK_GENES", "GLOBAL_GENES", "THRESHOLD_SCOPES", "SubnetConfig", "SupernetConfig",
               "count_params"],
    "errors": ["ConfigError"],
    "exported": ["EXPORT_FORMAT", "ExportedSubnet", "load_exported"],
    "extract": ["extract_subnet"],
    "spikformer": ["AttentionProduct", "Spikformer", "SpikformerBlock", "SpikformerSupernet", "SpikingMLP",
                   "SpikingPatchSplitting", "SpikingSelfAttention", "integrate_frames"],
    "transform": ["InputTransform"],
})
