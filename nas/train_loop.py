"""The training loop shared by supernet training and fine-tuning: its state (what a checkpoint
holds), its losses, one epoch, and the epochs with validation, checkpoints and metrics."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from models import ConfigError, Spikformer, SubnetConfig
from models.spikformer import separate_qkv_layout

from .checkpoint import save_checkpoint
from .distributed import rank, world
from .io import atomic_write
from .precision import autocast
from .recipes import Recipe

if TYPE_CHECKING:
    from .checkpoint import FinetuneCheckpoint, SupernetCheckpoint


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the block; give the caller's states back after it.

    Weight init and augmentation draw from the global generators, so training seeds them;
    forking them keeps that from resetting the random stream of the code that called us.
    """
    with forked_rng(device):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


@contextlib.contextmanager
def forked_rng(device: torch.device) -> Iterator[None]:
    """Give torch's global generators (the CPU's and `device`'s) back as they were after the block."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda"):
        yield


def train_loader(train: Dataset, recipe: Recipe, *, seed: int, device: torch.device) -> DataLoader:
    """Shuffled batches of `train`, in an order set by `seed` (and the epoch under torchrun)."""
    sampler = DistributedSampler(train, shuffle=True, seed=seed, drop_last=True) if world() > 1 else None
    loader = DataLoader(
        train, batch_size=recipe.batch_size, shuffle=sampler is None, sampler=sampler,
        generator=torch.Generator().manual_seed(seed), drop_last=True, num_workers=recipe.num_workers,
        persistent_workers=recipe.num_workers > 0, pin_memory=device.type == "cuda",
    )
    if len(loader) == 0:
        raise ConfigError(f"batch_size={recipe.batch_size} is larger than the training split ({len(train)} images): "
                          f"choose a batch size of at most {len(train)} (--batch-size on the command line) or "
                          "train on more images")
    return loader


def optimizer_and_scheduler(net: nn.Module, recipe: Recipe,
                             updates_per_epoch: int) -> tuple[torch.optim.Optimizer, Scheduler]:
    """AdamW without decay on biases and norms; warmup, then cosine, updated every step."""
    optimizer = create_optimizer_v2(net, opt="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=recipe.epochs, warmup_epochs=recipe.warmup_epochs,
        warmup_lr=recipe.warmup_lr, min_lr=recipe.min_lr, step_on_epochs=False, updates_per_epoch=updates_per_epoch,
    )
    return optimizer, scheduler


@dataclass(frozen=True)
class Losses:
    """Mixup/CutMix with soft targets while they are on; hard labels (smoothed) after."""

    mixup: Mixup | None
    mixup_off_epoch: int | None
    soft: nn.Module
    hard: nn.Module

    @classmethod
    def from_recipe(cls, recipe: Recipe, num_classes: int) -> Losses:
        mixup = None
        if recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0:
            mixup = Mixup(mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                          label_smoothing=recipe.label_smoothing, num_classes=num_classes)
        hard = (LabelSmoothingCrossEntropy(recipe.label_smoothing) if recipe.label_smoothing > 0
                else nn.CrossEntropyLoss())
        return cls(mixup=mixup, mixup_off_epoch=recipe.mixup_off_epoch, soft=SoftTargetCrossEntropy(), hard=hard)

    def mixup_at(self, epoch: int) -> Mixup | None:
        """The Mixup of `epoch` (0-based), or None once it is off."""
        if self.mixup_off_epoch is not None and epoch >= self.mixup_off_epoch:
            return None
        return self.mixup


@dataclass(kw_only=True)
class Loop:
    """One training run's moving parts: what a checkpoint must hold to resume it.

    The plain loop trains one network; `_SupernetRun` draws the subnets of each step.
    """

    net: Spikformer
    recipe: Recipe
    seed: int
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    loader_rng: torch.Generator
    precision: str
    scaler: torch.amp.GradScaler
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def step_subnets(self) -> list[SubnetConfig | None]:
        """The networks of the next step, in order; None: the network as it is."""
        return [None]

    def _restore(self, ckpt: SupernetCheckpoint | FinetuneCheckpoint, path: Path) -> None:
        if separate_qkv_layout(ckpt.model):
            # Its weights load (into the fused layout), its optimizer state does not.
            raise ConfigError(f"checkpoint {path} was written before spiking self-attention fused Q, K and V into one "
                              "layer: it still serves searches, export and fine-tuning, but its optimizer state cannot "
                              "continue this training run; finish the run with the autospk that started it, or choose "
                              "another --output")
        self.net.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scheduler.load_state_dict(ckpt.scheduler)
        torch.set_rng_state(ckpt.rng["torch"])
        self.loader_rng.set_state(ckpt.rng["loader"])
        if ckpt.scaler:
            self.scaler.load_state_dict(ckpt.scaler)
        self.epoch, self.history = ckpt.epoch, list(ckpt.history)

    def _loop_state(self) -> dict[str, Any]:
        """The checkpoint fields every run has."""
        return {
            "epoch": self.epoch,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "loader": self.loader_rng.get_state()},
            "recipe": self.recipe,
            "seed": self.seed,
            "history": list(self.history),
            "precision": self.precision,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }


LOG_EVERY = 20
"""Steps between progress-bar updates: the only times a step's loss is read on the host."""


def train_epoch(run: Loop, model: nn.Module, loader: DataLoader, losses: Losses, *, epoch: int,
                 device: torch.device, progress: bool) -> float:
    """Train epoch `epoch` (0-based), the networks `run.step_subnets` names at every step; the mean loss.

    The loss is summed on the device and read on the host only every `LOG_EVERY` steps and at
    the end of the epoch, so that a step does not wait for the device.
    """
    run.net.train()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    mixup = losses.mixup_at(epoch)
    criterion = losses.hard if mixup is None else losses.soft
    epochs = run.recipe.epochs
    # A bar only on a terminal: in a log file each refresh would be another line. `train_supernet`
    # prints a line per epoch either way.
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress or rank() != 0
               or not sys.stderr.isatty(), leave=False, dynamic_ncols=True)
    total = torch.zeros((), device=device)
    steps = 0
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if mixup is not None:
            x, y = mixup(x, y)
        configs = run.step_subnets()
        run.optimizer.zero_grad(set_to_none=True)
        teacher: torch.Tensor | None = None
        for i, config in enumerate(configs):
            if config is not None:
                run.net.set_subnet(config)
            last = i == len(configs) - 1
            # Gradients of a sandwich are summed locally and all-reduced once, after the last subnet.
            defer = not last and isinstance(model, DistributedDataParallel)
            with model.no_sync() if defer else contextlib.nullcontext():
                with autocast(device, run.precision):
                    logits = model(x)
                    if teacher is None:
                        loss = criterion(logits, y) / len(configs)
                    else:
                        # In-place distillation: the largest subnet's soft outputs are the target.
                        loss = losses.soft(logits, teacher) / len(configs)
                run.scaler.scale(loss).backward()
            if run.recipe.distill and i == 0:
                teacher = logits.detach().float().softmax(dim=-1)
            total += loss.detach()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        steps += 1
        run.scheduler.step_update(epoch * len(loader) + steps)
        if not bar.disable and steps % LOG_EVERY == 0:
            bar.set_postfix(loss=f"{total.item() / steps:.4f}", lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
    run.scheduler.step(epoch + 1)
    return total.item() / max(steps, 1)


METRICS = ("epoch", "loss", "lr", "val_accuracy_largest", "val_accuracy_smallest", "val_energy_mj_largest",
           "val_energy_mj_smallest")
"""Columns of supernet training's metrics file, one row per epoch (validation columns empty on
epochs not validated)."""

FINETUNE_METRICS = ("epoch", "loss", "lr", "val_accuracy", "val_energy_mj")
"""Columns of fine-tuning's metrics file, one row per epoch."""


def metrics_path(checkpoint: str | Path) -> Path:
    """The CSV of per-epoch metrics written beside `checkpoint`: ``NAME.metrics.csv`` for ``NAME.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.metrics.csv")


def write_metrics(path: Path, history: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Write the whole history (so a resumed run's file matches its checkpoint)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """An epoch's progress line: loss, learning rate and the validation accuracies it has."""
    line = f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, lr {row['lr']:.2e}"
    scores = [f"{key.removeprefix('val_accuracy').lstrip('_')} {value:.2%}".lstrip()
              for key, value in row.items() if key.startswith("val_accuracy")]
    return line + (f", val acc {', '.join(scores)}" if scores else "")


def fit(run: Loop, model: nn.Module, loader: DataLoader, losses: Losses, *,
         device: torch.device, progress: bool, eval_every: int, validate: Callable[[], dict[str, float]],
         checkpoint: Path, columns: tuple[str, ...]) -> None:
    """Train from `run.epoch` to the recipe's last epoch; after each, validate (every `eval_every`
    epochs and after the last), checkpoint and write the metrics file (rank 0), report progress."""
    epochs = run.recipe.epochs
    for epoch in range(run.epoch, epochs):
        loss = train_epoch(run, model, loader, losses, epoch=epoch, device=device, progress=progress)
        run.epoch = epoch + 1
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "lr": run.optimizer.param_groups[0]["lr"]}
        if eval_every > 0 and (run.epoch % eval_every == 0 or run.epoch == epochs) and rank() == 0:
            row.update(validate())
        run.history.append(row)
        if rank() == 0:
            save_checkpoint(checkpoint, run.checkpoint())
            write_metrics(metrics_path(checkpoint), run.history, columns)
        if world() > 1:
            dist.barrier()
        if progress and rank() == 0:
            tqdm.write(epoch_line(row, epochs))
