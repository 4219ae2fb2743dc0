"""Our NSGA-II sampler, assembled from selection, variation and de-duplication."""

from ._dedup import ARCH_ATTR, ARCH_KEY, known_arch_ids, trial_arch_id
from ._sampler import SpikformerNSGAIISampler
from ._selection import crowding_distance, select_top
from ._variation import mutate, uniform_crossover

__all__ = [
    "ARCH_ATTR",
    "ARCH_KEY",
    "SpikformerNSGAIISampler",
    "crowding_distance",
    "known_arch_ids",
    "mutate",
    "select_top",
    "trial_arch_id",
    "uniform_crossover",
]
