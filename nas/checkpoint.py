"""Training checkpoints: the on-disk formats, their only writer and their readers.

A checkpoint file holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``. Both kinds share one base, `TrainingCheckpoint` (the
training loop's state). On disk a supernet checkpoint is a dict with ``format`` (1) and one
key per field of `SupernetCheckpoint`, except that the `SupernetConfig` is stored under
``"supernet"``; configs are stored as their ``to_dict`` output. Checkpoints written before
``data_fingerprint`` existed lack that key and load with None. A fine-tuning checkpoint
(`FinetuneCheckpoint`, one subnet trained on from inherited weights) is the same kind of dict
with ``format`` ``"finetune-1"``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from models import ConfigError, SpikformerSupernet, SubnetConfig, SupernetConfig

from .dataspec import DatasetSpec
from .io import atomic_write, load_tensor_file
from .recipes import Recipe
from .space import SearchSpace

if TYPE_CHECKING:
    from .data import DataSplits

CHECKPOINT_FORMAT = 1

_LOOP_KEYS = ("epoch", "model", "optimizer", "scheduler", "rng", "supernet", "recipe", "seed", "history")
"""Keys every training checkpoint holds."""


@dataclass(frozen=True, kw_only=True)
class TrainingCheckpoint:
    """What every training checkpoint holds: a training loop's state after some epochs.

    Attributes:
        epoch: Epochs completed.
        model: The network's state dict.
        optimizer: The optimizer's state dict.
        scheduler: The learning-rate scheduler's state dict.
        rng: Random states to resume from: ``torch`` (the CPU generator), ``loader`` (the
            data order) and, for a supernet, ``subnets`` (the Python generator of subnet
            draws, tuples as lists).
        supernet_cfg: The supernet's shape (for a fine-tuned subnet: its data shape and stem).
        recipe: The training hyper-parameters.
        seed: The seed of data order and augmentation (and subnet draws).
        history: One dict per completed epoch: ``epoch``, mean ``loss``, final ``lr`` and, on
            validated epochs, validation accuracy and energy.
        precision: The precision it was trained in (``fp32`` in checkpoints written before
            precisions).
        scaler: The fp16 loss scaler's state (None unless trained in fp16).
    """

    FORMAT: ClassVar[int | str]
    KIND: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]
    MISSING_HINT: ClassVar[str] = ""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    supernet_cfg: SupernetConfig
    recipe: Recipe
    seed: int
    history: list[dict[str, Any]]
    precision: str = "fp32"
    scaler: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        """The dict written to disk: tensors (on the CPU, so that a file written on a GPU loads
        anywhere) and plain containers only."""
        return {
            "format": self.FORMAT,
            "epoch": self.epoch,
            "model": _on_cpu(self.model),
            "optimizer": _on_cpu(self.optimizer),
            "scheduler": self.scheduler,
            "rng": self.rng,
            "supernet": self.supernet_cfg.to_dict(),
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "history": self.history,
            "precision": self.precision,
            "scaler": self.scaler,
            **self._own_state(),
        }

    def _own_state(self) -> dict[str, Any]:
        """The keys a kind of checkpoint adds to `to_state`."""
        return {}

    @classmethod
    def _own_fields(cls, state: dict[str, Any], path: str | Path) -> dict[str, Any]:
        """The fields a kind of checkpoint adds, from what `to_state` wrote."""
        return {}

    @classmethod
    def from_state(cls, state: Any, path: str | Path):
        """Rebuild a checkpoint from the dict `to_state` wrote.

        Args:
            state: What the file at `path` holds.
            path: Where `state` was read from, for the error messages.

        Raises:
            ConfigError: if `state` is not a complete autospk checkpoint of this kind.
        """
        if not isinstance(state, dict) or state.get("format") != cls.FORMAT:
            raise ConfigError(f"{path} is not an autospk {cls.KIND} (format {cls.FORMAT})")
        missing = [key for key in cls.KEYS if key not in state]
        if missing:
            raise ConfigError(f"{cls.KIND} {path} lacks the keys {missing}{cls.MISSING_HINT}")
        try:
            return cls(
                epoch=state["epoch"],
                model=state["model"],
                optimizer=state["optimizer"],
                scheduler=state["scheduler"],
                rng=state["rng"],
                supernet_cfg=SupernetConfig.from_dict(state["supernet"]),
                recipe=Recipe.from_dict(state["recipe"]),
                seed=state["seed"],
                history=list(state["history"]),
                precision=state.get("precision", "fp32"),
                scaler=state.get("scaler"),
                **cls._own_fields(state, path),
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{cls.KIND} {path}: {err}") from None


@dataclass(frozen=True, kw_only=True)
class SupernetCheckpoint(TrainingCheckpoint):
    """A supernet after some epochs of training, with all it takes to resume or use it
    (the fields of `TrainingCheckpoint`, and these).

    Attributes:
        space: The search space the supernet was trained for.
        dataset: The data set it was trained on.
        data_fingerprint: `nas.data.fingerprint` of the training data; None in checkpoints
            written before fingerprints.
    """

    FORMAT: ClassVar[int] = CHECKPOINT_FORMAT
    KIND: ClassVar[str] = "supernet checkpoint"
    KEYS: ClassVar[tuple[str, ...]] = (*_LOOP_KEYS, "space", "dataset")
    MISSING_HINT: ClassVar[str] = "; it was not written by nas.save_checkpoint"

    space: SearchSpace
    dataset: DatasetSpec
    data_fingerprint: str | None = None

    def _own_state(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "dataset": self.dataset.to_dict(),
                "data_fingerprint": self.data_fingerprint}

    @classmethod
    def _own_fields(cls, state: dict[str, Any], path: str | Path) -> dict[str, Any]:
        data_fingerprint = state.get("data_fingerprint")
        if data_fingerprint is not None and not isinstance(data_fingerprint, str):
            raise ConfigError(f"supernet checkpoint {path}: data_fingerprint={data_fingerprint!r} is not a string")
        return {"space": SearchSpace.from_dict(state["space"]), "dataset": DatasetSpec.from_dict(state["dataset"]),
                "data_fingerprint": data_fingerprint}

    def check_data(self, path: str | Path, dataset: DatasetSpec, data: DataSplits, *, fix: str) -> None:
        """Refuse data other than the data this supernet was trained on.

        A checkpoint without a fingerprint (written before them) cannot tell, and passes; one
        written before fingerprints covered every sample is compared in its own kind
        (`nas.data.fingerprint_matches`).

        Args:
            path: Where the checkpoint was read from, for the message.
            dataset: The data set now loaded.
            data: Its splits.
            fix: What to do instead, ending the message.

        Raises:
            ConfigError: naming the file, both data sets and both fingerprints.
        """
        from .data import fingerprint, fingerprint_matches

        if self.data_fingerprint is not None and not fingerprint_matches(self.data_fingerprint, data):
            raise ConfigError(f"supernet checkpoint {path} was trained on {self.dataset.describe()} with data "
                              f"fingerprint {self.data_fingerprint}, but {dataset.describe()} now has data fingerprint "
                              f"{fingerprint(data)} (other images, labels or split); {fix}")

    def build_supernet(self, device: torch.device | str = "cpu") -> SpikformerSupernet:
        """The trained supernet on `device`, in eval mode, running its largest subnet."""
        # The fresh weights are overwritten at once: drawing them must not move the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            net = SpikformerSupernet(self.supernet_cfg)
        net.load_state_dict(self.model)
        return net.to(device).eval()


FINETUNE_FORMAT = "finetune-1"


@dataclass(frozen=True, kw_only=True)
class FinetuneCheckpoint(TrainingCheckpoint):
    """One subnet fine-tuned from inherited weights, after some epochs, with all it takes to
    resume (the fields of `TrainingCheckpoint`, and these).

    Attributes:
        config: The subnet (active genes).
        origin: Where the inherited weights came from (plain values, e.g. the study, trial
            and supernet checkpoint); a resumed run must come from the same place.
        data_fingerprint: `nas.data.fingerprint` of the training data.
    """

    FORMAT: ClassVar[str] = FINETUNE_FORMAT
    KIND: ClassVar[str] = "fine-tuning checkpoint"
    KEYS: ClassVar[tuple[str, ...]] = (*_LOOP_KEYS, "config", "origin", "data_fingerprint", "precision", "scaler")

    config: SubnetConfig
    origin: dict[str, Any]
    data_fingerprint: str

    def _own_state(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "origin": self.origin, "data_fingerprint": self.data_fingerprint}

    @classmethod
    def _own_fields(cls, state: dict[str, Any], path: str | Path) -> dict[str, Any]:
        return {"config": SubnetConfig.from_dict(state["config"]), "origin": dict(state["origin"]),
                "data_fingerprint": state["data_fingerprint"]}


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
