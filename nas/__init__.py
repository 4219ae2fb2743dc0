"""Search: space, data, supernet training, subnet evaluation, fitness, sampler, objective.

Reads `models` and `energy`; never imports `studies`.
"""

from .data import DATASETS, DatasetSpec, DataSplits, load_dataset
from .evaluate import SubnetEvaluator, SubnetScore, recalibrate_bn
from .fitness import AEBSettings, f_aeb
from .objective import DIRECTIONS, METRIC_NAMES, OBJECTIVES, Budgets, SubnetObjective
from .sampler import SpikformerNSGAIISampler
from .space import GENES, SearchSpace, load_space, presets
from .train import RECIPES, Recipe, get_recipe, load_checkpoint, supernet_from_checkpoint, train_supernet

__all__ = [
    "DATASETS",
    "DIRECTIONS",
    "GENES",
    "METRIC_NAMES",
    "OBJECTIVES",
    "RECIPES",
    "AEBSettings",
    "Budgets",
    "DataSplits",
    "DatasetSpec",
    "Recipe",
    "SearchSpace",
    "SpikformerNSGAIISampler",
    "SubnetEvaluator",
    "SubnetObjective",
    "SubnetScore",
    "f_aeb",
    "get_recipe",
    "load_checkpoint",
    "load_dataset",
    "load_space",
    "presets",
    "recalibrate_bn",
    "supernet_from_checkpoint",
    "train_supernet",
]
