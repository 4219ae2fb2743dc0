"""Search: space, data, supernet training, subnet evaluation, fitness, sampler, objective.

Reads `models` and `energy`; never imports `studies`. Training (which needs timm) lives in
`nas.train` and is imported on demand.
"""

from .data import DATASETS, DatasetSpec, DataSplits, load_dataset
from .evaluate import SubnetEvaluator, SubnetScore, recalibrate_bn
from .fitness import AEBSettings, f_aeb
from .objective import DIRECTIONS, METRIC_NAMES, OBJECTIVES, Budgets, SubnetObjective
from .sampler import SpikformerNSGAIISampler
from .space import GENES, SearchSpace, load_space, presets
from .checkpoint import load_checkpoint, save_checkpoint, supernet_from_checkpoint

__all__ = [
    "DATASETS",
    "DIRECTIONS",
    "GENES",
    "METRIC_NAMES",
    "OBJECTIVES",
    "AEBSettings",
    "Budgets",
    "DataSplits",
    "DatasetSpec",
    "SearchSpace",
    "SpikformerNSGAIISampler",
    "SubnetEvaluator",
    "SubnetObjective",
    "SubnetScore",
    "f_aeb",
    "load_checkpoint",
    "load_dataset",
    "load_space",
    "presets",
    "recalibrate_bn",
    "save_checkpoint",
    "supernet_from_checkpoint",
]
