"""Training checkpoints: the on-disk formats, their only writer and their readers.

A checkpoint file holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``. On disk a supernet checkpoint is a dict with ``format`` (1)
and one key per field of `SupernetCheckpoint`, except that the `SupernetConfig` is stored
under ``"supernet"``; configs are stored as their ``to_dict`` output. Checkpoints written
before ``data_fingerprint`` existed lack that key and load with None. A fine-tuning
checkpoint (`FinetuneCheckpoint`, one subnet trained on from inherited weights) is the same
kind of dict with ``format`` ``"finetune-1"``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models import ConfigError, SpikformerSupernet, SubnetConfig, SupernetConfig

from .dataspec import DatasetSpec
from .io import atomic_write, load_tensor_file
from .recipes import Recipe
from .space import SearchSpace

CHECKPOINT_FORMAT = 1

_STATE_KEYS = ("epoch", "model", "optimizer", "scheduler", "rng", "space", "supernet", "dataset", "recipe",
               "seed", "history")


@dataclass(frozen=True)
class SupernetCheckpoint:
    """A supernet after some epochs of training, with all it takes to resume or use it.

    Attributes:
        epoch: Epochs completed.
        model: The supernet's state dict.
        optimizer: The optimizer's state dict.
        scheduler: The learning-rate scheduler's state dict.
        rng: Random states to resume from: ``torch`` (the CPU generator), ``loader`` (the
            data order) and ``subnets`` (the Python generator of subnet draws, tuples as lists).
        space: The search space the supernet was trained for.
        supernet_cfg: The supernet's shape.
        dataset: The data set it was trained on.
        recipe: The training hyper-parameters.
        seed: The training seed.
        history: One dict per completed epoch: ``epoch``, mean ``loss``, final ``lr`` and, on
            validated epochs, the largest and smallest subnets' validation accuracy and energy.
        data_fingerprint: `nas.data.fingerprint` of the training data; None in checkpoints
            written before fingerprints.
        precision: The precision it was trained in (``fp32`` in checkpoints written before
            precisions).
        scaler: The fp16 loss scaler's state (None unless trained in fp16).
    """

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    space: SearchSpace
    supernet_cfg: SupernetConfig
    dataset: DatasetSpec
    recipe: Recipe
    seed: int
    history: list[dict[str, Any]]
    data_fingerprint: str | None = None
    precision: str = "fp32"
    scaler: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        """The dict written to disk: tensors (on the CPU, so that a file written on a GPU loads
        anywhere) and plain containers only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "model": _on_cpu(self.model),
            "optimizer": _on_cpu(self.optimizer),
            "scheduler": self.scheduler,
            "rng": self.rng,
            "space": self.space.to_dict(),
            "supernet": self.supernet_cfg.to_dict(),
            "dataset": self.dataset.to_dict(),
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "history": self.history,
            "data_fingerprint": self.data_fingerprint,
            "precision": self.precision,
            "scaler": self.scaler,
        }

    @classmethod
    def from_state(cls, state: Any, path: str | Path) -> SupernetCheckpoint:
        """Rebuild a checkpoint from the dict `to_state` wrote.

        Args:
            state: What the file at `path` holds.
            path: Where `state` was read from, for the error messages.

        Raises:
            ConfigError: if `state` is not a complete autospk supernet checkpoint.
        """
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path} is not an autospk supernet checkpoint (format {CHECKPOINT_FORMAT})")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ConfigError(f"supernet checkpoint {path} lacks the keys {missing}; "
                             "it was not written by nas.save_checkpoint")
        data_fingerprint = state.get("data_fingerprint")
        if data_fingerprint is not None and not isinstance(data_fingerprint, str):
            raise ConfigError(f"supernet checkpoint {path}: data_fingerprint={data_fingerprint!r} is not a string")
        try:
            return cls(
                epoch=state["epoch"],
                model=state["model"],
                optimizer=state["optimizer"],
                scheduler=state["scheduler"],
                rng=state["rng"],
                space=SearchSpace.from_dict(state["space"]),
                supernet_cfg=SupernetConfig.from_dict(state["supernet"]),
                dataset=DatasetSpec.from_dict(state["dataset"]),
                recipe=Recipe.from_dict(state["recipe"]),
                seed=state["seed"],
                history=list(state["history"]),
                data_fingerprint=data_fingerprint,
                precision=state.get("precision", "fp32"),
                scaler=state.get("scaler"),
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(f"supernet checkpoint {path}: {err}") from None

    def check_data(self, path: str | Path, dataset: DatasetSpec, data_fingerprint: str, *, fix: str) -> None:
        """Refuse data other than the data this supernet was trained on.

        A checkpoint without a fingerprint (written before them) cannot tell, and passes.

        Args:
            path: Where the checkpoint was read from, for the message.
            dataset: The data set now loaded.
            data_fingerprint: Its `nas.data.fingerprint`.
            fix: What to do instead, ending the message.

        Raises:
            ConfigError: naming the file, both data sets and both fingerprints.
        """
        if self.data_fingerprint is not None and self.data_fingerprint != data_fingerprint:
            raise ConfigError(f"supernet checkpoint {path} was trained on {self.dataset.describe()} with data "
                              f"fingerprint {self.data_fingerprint}, but {dataset.describe()} now has data fingerprint "
                              f"{data_fingerprint} (other images, labels or split); {fix}")

    def build_supernet(self, device: torch.device | str = "cpu") -> SpikformerSupernet:
        """The trained supernet on `device`, in eval mode, running its largest subnet."""
        # The fresh weights are overwritten at once: drawing them must not move the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            net = SpikformerSupernet(self.supernet_cfg)
        net.load_state_dict(self.model)
        return net.to(device).eval()


FINETUNE_FORMAT = "finetune-1"

_FINETUNE_KEYS = ("epoch", "model", "optimizer", "scheduler", "rng", "supernet", "config", "recipe", "seed", "history",
                  "origin", "data_fingerprint", "precision", "scaler")


@dataclass(frozen=True)
class FinetuneCheckpoint:
    """One subnet fine-tuned from inherited weights, after some epochs, with all it takes to resume.

    Attributes:
        epoch: Epochs completed.
        model: The standalone subnet's state dict.
        optimizer: The optimizer's state dict.
        scheduler: The learning-rate scheduler's state dict.
        rng: Random states to resume from: ``torch`` (the CPU generator) and ``loader``.
        supernet_cfg: The data shape and stem of the subnet (its supernet's config).
        config: The subnet (active genes).
        recipe: The fine-tuning recipe (`nas.recipes.finetune_recipe`).
        seed: The seed of data order and augmentation.
        history: One dict per completed epoch: ``epoch``, mean ``loss``, final ``lr`` and, on
            validated epochs, ``val_accuracy`` and ``val_energy_mj``.
        origin: Where the inherited weights came from (plain values, e.g. the study, trial
            and supernet checkpoint); a resumed run must come from the same place.
        data_fingerprint: `nas.data.fingerprint` of the training data.
        precision: The precision of training.
        scaler: The fp16 loss scaler's state (None unless trained in fp16).
    """

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    supernet_cfg: SupernetConfig
    config: SubnetConfig
    recipe: Recipe
    seed: int
    history: list[dict[str, Any]]
    origin: dict[str, Any]
    data_fingerprint: str
    precision: str = "fp32"
    scaler: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        """The dict written to disk (tensors on the CPU, plain containers)."""
        return {
            "format": FINETUNE_FORMAT,
            "epoch": self.epoch,
            "model": _on_cpu(self.model),
            "optimizer": _on_cpu(self.optimizer),
            "scheduler": self.scheduler,
            "rng": self.rng,
            "supernet": self.supernet_cfg.to_dict(),
            "config": self.config.to_dict(),
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "history": self.history,
            "origin": self.origin,
            "data_fingerprint": self.data_fingerprint,
            "precision": self.precision,
            "scaler": self.scaler,
        }

    @classmethod
    def from_state(cls, state: Any, path: str | Path) -> FinetuneCheckpoint:
        """Rebuild a checkpoint from the dict `to_state` wrote.

        Raises:
            ConfigError: if `state` is not a complete autospk fine-tuning checkpoint.
        """
        if not isinstance(state, dict) or state.get("format") != FINETUNE_FORMAT:
            raise ConfigError(f"{path} is not an autospk fine-tuning checkpoint (format {FINETUNE_FORMAT})")
        missing = [key for key in _FINETUNE_KEYS if key not in state]
        if missing:
            raise ConfigError(f"fine-tuning checkpoint {path} lacks the keys {missing}")
        try:
            return cls(
                epoch=state["epoch"], model=state["model"], optimizer=state["optimizer"],
                scheduler=state["scheduler"], rng=state["rng"],
                supernet_cfg=SupernetConfig.from_dict(state["supernet"]),
                config=SubnetConfig.from_dict(state["config"]), recipe=Recipe.from_dict(state["recipe"]),
                seed=state["seed"], history=list(state["history"]), origin=dict(state["origin"]),
                data_fingerprint=state["data_fingerprint"], precision=state["precision"], scaler=state["scaler"],
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(f"fine-tuning checkpoint {path}: {err}") from None


def save_checkpoint(path: str | Path, ckpt: SupernetCheckpoint | FinetuneCheckpoint) -> None:
    """Write `ckpt` to `path` atomically (see `nas.io.atomic_write`)."""
    atomic_write(path, functools.partial(torch.save, ckpt.to_state()))


def load_checkpoint(path: str | Path) -> SupernetCheckpoint:
    """Read a supernet checkpoint, unpickling only tensors and plain containers.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ConfigError: if the file is not a readable, complete autospk supernet checkpoint.
    """
    state = load_tensor_file(path, what="supernet checkpoint", hint=_missing_supernet_hint(path))
    return SupernetCheckpoint.from_state(state, path)


QUICKSTART_CHECKPOINT = Path("autospk-runs") / "digits-supernet.pt"
"""Where ``autospk-study quickstart`` writes its supernet (relative to where it runs)."""


def _missing_supernet_hint(path: str | Path) -> str:
    """What to do about a missing supernet checkpoint: the checkpoints beside it and the
    quickstart's, if there are any, else how to train one."""
    folder = Path(path).parent
    found = sorted({*folder.glob("*.pt"), *(p for p in [QUICKSTART_CHECKPOINT] if p.is_file())})
    found = [p for p in found if not p.name.endswith(".finetune.pt") and p.name != "finetune.pt"]
    train = "train one with `autospk-study train-supernet`"
    if not found:
        return train
    shown = ", ".join(str(p) + (" (the quickstart's)" if p == QUICKSTART_CHECKPOINT else "") for p in found[:5])
    return f"checkpoints here: {shown}; or {train}"


def load_finetune_checkpoint(path: str | Path) -> FinetuneCheckpoint:
    """Read a fine-tuning checkpoint, unpickling only tensors and plain containers.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ConfigError: if the file is not a readable, complete autospk fine-tuning checkpoint.
    """
    state = load_tensor_file(path, what="fine-tuning checkpoint", hint="fine-tune with `autospk-study finetune`")
    return FinetuneCheckpoint.from_state(state, path)


def _on_cpu(value: Any) -> Any:
    """`value` with every tensor in it moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value
