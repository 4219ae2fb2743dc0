"""Our NSGA-II sampler, assembled from selection, variation and surrogate screening."""

from ._sampler import SpikformerNSGAIISampler
from ._selection import crowding_distance, select_top
from ._variation import mutate, uniform_crossover

__all__ = [
    "SpikformerNSGAIISampler",
    "crowding_distance",
    "mutate",
    "select_top",
    "uniform_crossover",
]
