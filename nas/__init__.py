"""Search: space, data, supernet training, subnet evaluation, fitness, sampler, objective.

Reads `models` and `energy`; never imports `studies`. Names load on first use: the settings
(`nas.recipes`, `nas.dataspec`, `nas.fitness`, `nas.space`) import neither torch nor timm, so
the command line can show its defaults at once.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submodules=["train"], submod_attrs={
    "checkpoint": ["FinetuneCheckpoint", "SupernetCheckpoint", "load_checkpoint", "load_finetune_checkpoint",
                   "save_checkpoint"],
    "data": ["DataSplits", "load_dataset"],
    "dataspec": ["DATASETS", "DatasetSpec"],
    "device": ["default_device"],
    "evaluate": ["SubnetEvaluator", "SubnetScore"],
    "fitness": ["AEBSettings", "f_aeb"],
    "io": ["atomic_write", "load_tensor_file"],
    "objective": ["SubnetObjective"],
    "recipes": ["RECIPES", "Recipe", "finetune_recipe", "get_recipe"],
    "sampler": ["SpikformerNSGAIISampler"],
    "scoring": ["recalibrate_bn", "score_energies", "score_model"],
    "settings": ["DIRECTIONS", "METRIC_NAMES", "OBJECTIVE_DESCRIPTIONS", "OBJECTIVES", "Budgets",
                 "EvaluationSettings", "SamplerSettings"],
    "space": ["GENES", "SearchSpace", "load_space", "presets"],
})
