"""Training recipes of supernets, and of subnets fine-tuned from them: light to import (no
torch), so the CLI lists them fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from models import ConfigError


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of supernet training.

    Args:
        name: Recipe name.
        epochs: Training epochs.
        batch_size: Images per step (per process under torchrun).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        warmup_epochs: Linear warmup length.
        warmup_lr: Learning rate at the start of warmup.
        min_lr: Floor of the cosine schedule.
        label_smoothing: Label smoothing (also inside Mixup's soft targets).
        mixup_alpha: Mixup alpha; 0 switches Mixup off.
        mixup_off_epoch: Epoch from which Mixup is off (None: never).
        cutmix_alpha: CutMix alpha; 0 switches CutMix off.
        sandwich: Train largest + smallest + a random subnet at every step.
        distill: In-place distillation (with `sandwich`): the largest subnet learns from the
            labels, the smallest and the random one from its soft outputs, in the same step.
        num_workers: Data-loading worker processes.
    """

    name: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    warmup_lr: float
    min_lr: float
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0
    mixup_off_epoch: int | None = None
    cutmix_alpha: float = 0.0
    sandwich: bool = False
    distill: bool = False
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError(f"recipe '{self.name}': epochs={self.epochs} must be >= 1 and "
                             f"batch_size={self.batch_size} >= 2")
        if self.lr <= 0:
            raise ConfigError(f"recipe '{self.name}': lr={self.lr} must be > 0")
        if self.distill and not self.sandwich:
            raise ConfigError(f"recipe '{self.name}': distill=True needs sandwich=True (the largest subnet "
                              "of each step is the teacher)")

    @property
    def rule(self) -> str:
        """The training rule: ``uniform``, ``sandwich`` or ``distill`` (sandwich with distillation)."""
        return "distill" if self.distill else "sandwich" if self.sandwich else "uniform"

    def with_rule(self, rule: str | None) -> Recipe:
        """This recipe trained by `rule` (None: unchanged).

        Raises:
            ConfigError: if `rule` is not one of `RULES`.
        """
        if rule is None:
            return self
        if rule not in RULES:
            raise ConfigError(f"unknown training rule '{rule}'; choose from {list(RULES)}")
        return dataclasses.replace(self, sandwich=rule != "uniform", distill=rule == "distill")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Rebuild a recipe from ``to_dict`` output.

        Raises:
            ConfigError: if `data` has keys a recipe does not know or lacks required ones.
        """
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING]
        if unknown or missing:
            raise ConfigError(f"recipe {data.get('name')!r}: unknown keys {unknown}, missing keys {missing}; "
                              f"allowed keys: {allowed}")
        return cls(**data)


RULES = ("uniform", "sandwich", "distill")
"""Training rules: one random subnet per step; largest + smallest + random (sandwich); the
sandwich with the others distilled from the largest's outputs (BigNAS/OFA in-place distillation)."""

RECIPES: dict[str, Recipe] = {
    # About 5 minutes on 2 CPU cores for the `digits` space.
    # Both train by the sandwich rule with in-place distillation: on digits it beat uniform
    # sampling for the largest, the smallest and the median subnet (bench_distill.py).
    "digits": Recipe(name="digits", epochs=30, batch_size=32, lr=4e-3, weight_decay=0.01,
                     warmup_epochs=2, warmup_lr=1e-4, min_lr=5e-5, label_smoothing=0.1, sandwich=True,
                     distill=True),
    # Spikformer's CIFAR recipe.
    "cifar": Recipe(name="cifar", epochs=300, batch_size=128, lr=5e-4, weight_decay=0.06,
                    warmup_epochs=20, warmup_lr=1e-5, min_lr=1e-5, label_smoothing=0.1,
                    mixup_alpha=0.5, mixup_off_epoch=200, cutmix_alpha=0.0, num_workers=4, sandwich=True,
                    distill=True),
    # Spikformer's CIFAR10-DVS recipe (its cifar10dvs/train.py): AdamW at lr 1e-3, weight decay
    # 0.06, batch 16, cosine from 10 warmup epochs, label smoothing 0.1, Mixup 0.5 off from
    # epoch 75; 96 epochs plus 10 of cooldown there, 106 cosine epochs here. (DVS128 Gesture
    # trained 200 epochs in the paper: pass --epochs 200.) Mixup mixes whole frame sequences.
    "dvs": Recipe(name="dvs", epochs=106, batch_size=16, lr=1e-3, weight_decay=0.06,
                  warmup_epochs=10, warmup_lr=1e-5, min_lr=1e-5, label_smoothing=0.1,
                  mixup_alpha=0.5, mixup_off_epoch=75, cutmix_alpha=0.0, num_workers=4, sandwich=True,
                  distill=True),
}


FINETUNE_LR_FACTOR = 0.1
"""Fine-tuning's peak learning rate as a share of the recipe's, which is for training from scratch."""


def finetune_recipe(recipe: Recipe, *, epochs: int | None = None, lr: float | None = None) -> Recipe:
    """`recipe` for fine-tuning one subnet that starts from the supernet's weights.

    Inherited weights are already trained: the recipe's peak learning rate, meant for
    training from scratch, would first undo much of that. Fine-tuning keeps its batch size,
    weight decay, label smoothing, Mixup/CutMix and cosine schedule, and changes:

    - ``lr``: a tenth of the recipe's (`FINETUNE_LR_FACTOR`), as weight-sharing NAS
      pipelines fine-tune subnets well below their training rate; ``min_lr`` at most that;
    - no warmup: the schedule starts at its peak, which is already low;
    - ``epochs``: a tenth of the recipe's (at least 1) unless given; Mixup stops at the same
      share of them as in the recipe;
    - one network per step (no sandwich, no distillation: there is one subnet).

    Args:
        recipe: The recipe the supernet was trained with.
        epochs: Fine-tuning epochs (None: a tenth of ``recipe.epochs``, at least 1).
        lr: Peak learning rate (None: ``recipe.lr * FINETUNE_LR_FACTOR``).
    """
    epochs = max(1, recipe.epochs // 10) if epochs is None else epochs
    lr = recipe.lr * FINETUNE_LR_FACTOR if lr is None else lr
    mixup_off = None if recipe.mixup_off_epoch is None else round(recipe.mixup_off_epoch * epochs / recipe.epochs)
    return dataclasses.replace(recipe, name=f"{recipe.name}-finetune", epochs=epochs, lr=lr, warmup_epochs=0,
                               min_lr=min(recipe.min_lr, lr), mixup_off_epoch=mixup_off, sandwich=False,
                               distill=False)


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; choose from {sorted(RECIPES)}")
    return RECIPES[name]


def default_recipe(dataset: str) -> str:
    """The recipe a data set trains with unless told otherwise: ``digits`` for digits, ``dvs`` for
    the event data sets, else ``cifar``."""
    from .dataspec import EVENT_DATASETS

    return "digits" if dataset == "digits" else "dvs" if dataset in EVENT_DATASETS else "cifar"
