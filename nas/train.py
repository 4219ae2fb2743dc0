"""Training: the supernet (one random subnet per batch over every gene, neuron genes
included), and one chosen subnet fine-tuned from its inherited weights.

Both run the same loop (`_fit`, `_train_epoch`) and use timm for what it already does
(AdamW without decay on biases and norms, warmup + cosine schedule, Mixup, soft-target and
label-smoothing losses). Checkpoints are written atomically after every epoch and hold only
tensors and plain containers, so they load with ``torch.load(weights_only=True)``;
``resume=True`` continues from the last one.

Run supernet training under ``torchrun --nproc-per-node N`` for data-parallel training:
every rank draws the same subnet at every step (same seed, same number of draws).
Fine-tuning runs in one process.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

from models import ConfigError, Spikformer, SpikformerSupernet, SubnetConfig, SupernetConfig
from models.spikformer import separate_qkv_layout

from .checkpoint import (
    FinetuneCheckpoint,
    SupernetCheckpoint,
    load_checkpoint,
    load_finetune_checkpoint,
    save_checkpoint,
)
from .data import DataSplits, fingerprint, load_dataset
from .dataspec import EVENT_DATASETS, DatasetSpec
from .device import default_device
from .evaluate import SubnetEvaluator, score_model
from .io import atomic_write
from .precision import autocast, check_precision, grad_scaler
from .recipes import Recipe
from .settings import EvaluationSettings
from .space import SearchSpace


@contextlib.contextmanager
def torchrun_process_group(device: torch.device | str | None = None) -> Iterator[None]:
    """Join the data-parallel process group when started by torchrun, and leave it after.

    Outside torchrun (no ``LOCAL_RANK`` in the environment) it does nothing. The backend is
    NCCL for CUDA devices and gloo otherwise.
    """
    if "LOCAL_RANK" not in os.environ or dist.is_initialized():
        yield
        return
    if default_device(device).type == "cuda":
        # One GPU per process: plain "cuda" then means this rank's GPU.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def skips_blocks(space: SearchSpace) -> bool:
    """Whether a subnet of `space` can run fewer blocks than the supernet holds."""
    return min(space.genes["depth"]) < max(space.genes["depth"])


def _subnets(space: SearchSpace, rng: random.Random, sandwich: bool) -> list[SubnetConfig]:
    if sandwich:
        return [space.largest(), space.smallest(), space.sample(rng)]
    return [space.sample(rng)]


@contextlib.contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the block; give the caller's states back after it.

    Weight init and augmentation draw from the global generators, so training seeds them;
    forking them keeps that from resetting the random stream of the code that called us.
    """
    with _forked_rng(device):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


@contextlib.contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """Give torch's global generators (the CPU's and `device`'s) back as they were after the block."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda"):
        yield


def _train_loader(train: Dataset, recipe: Recipe, *, seed: int, device: torch.device) -> DataLoader:
    """Shuffled batches of `train`, in an order set by `seed` (and the epoch under torchrun)."""
    sampler = DistributedSampler(train, shuffle=True, seed=seed, drop_last=True) if _world() > 1 else None
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


def _optimizer_and_scheduler(net: nn.Module, recipe: Recipe,
                             updates_per_epoch: int) -> tuple[torch.optim.Optimizer, Scheduler]:
    """AdamW without decay on biases and norms; warmup, then cosine, updated every step."""
    optimizer = create_optimizer_v2(net, opt="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=recipe.epochs, warmup_epochs=recipe.warmup_epochs,
        warmup_lr=recipe.warmup_lr, min_lr=recipe.min_lr, step_on_epochs=False, updates_per_epoch=updates_per_epoch,
    )
    return optimizer, scheduler


@dataclass(frozen=True)
class _Losses:
    """Mixup/CutMix with soft targets while they are on; hard labels (smoothed) after."""

    mixup: Mixup | None
    mixup_off_epoch: int | None
    soft: nn.Module
    hard: nn.Module

    @classmethod
    def from_recipe(cls, recipe: Recipe, num_classes: int) -> _Losses:
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
class _Loop:
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


@dataclass(kw_only=True)
class _SupernetRun(_Loop):
    """Supernet training: what it was asked for, and the subnet draws."""

    net: SpikformerSupernet
    space: SearchSpace
    supernet_cfg: SupernetConfig
    dataset: DatasetSpec
    data_fingerprint: str
    subnet_rng: random.Random

    def step_subnets(self) -> list[SubnetConfig | None]:
        return _subnets(self.space, self.subnet_rng, self.recipe.sandwich)

    def resume(self, ckpt: SupernetCheckpoint, path: Path) -> None:
        """Continue from `ckpt`, read from `path`, as if training had never stopped.

        Raises:
            ConfigError: if `ckpt` was trained for another space, data shape or data set.
        """
        if ckpt.space.to_dict() != self.space.to_dict() or ckpt.supernet_cfg != self.supernet_cfg:
            raise ConfigError(f"checkpoint {path} was trained for another space or data set; "
                             "resume it with the same settings or choose another --output")
        ckpt.check_data(path, self.dataset, self.data_fingerprint,
                        fix="resume it on the data it was trained on, or choose another --output")
        self._restore(ckpt, path)
        self.subnet_rng.setstate(_to_tuple(ckpt.rng["subnets"]))

    def checkpoint(self) -> SupernetCheckpoint:
        state = self._loop_state()
        state["rng"]["subnets"] = _to_lists(self.subnet_rng.getstate())
        return SupernetCheckpoint(**state, space=self.space, supernet_cfg=self.supernet_cfg, dataset=self.dataset,
                                  data_fingerprint=self.data_fingerprint)


@dataclass(kw_only=True)
class _FinetuneRun(_Loop):
    """Fine-tuning one subnet: which one, from where, on what data."""

    origin: dict[str, Any]
    data_fingerprint: str

    def resume(self, ckpt: FinetuneCheckpoint, path: Path) -> None:
        """Continue from `ckpt`, read from `path`, as if fine-tuning had never stopped.

        Raises:
            ConfigError: if `ckpt` fine-tunes another subnet, with another recipe or on other data.
        """
        fix = "resume with the same settings, or choose another --output"
        config = self.net.config
        if ckpt.config != config or ckpt.supernet_cfg != self.net.supernet_cfg or ckpt.origin != self.origin:
            raise ConfigError(f"fine-tuning checkpoint {path} is of another subnet (from {ckpt.origin}, "
                              f"{ckpt.config.arch_id}), not of this one (from {self.origin}, {config.arch_id}); {fix}")
        if ckpt.recipe != self.recipe:
            changed = {key: (value, getattr(self.recipe, key)) for key, value in ckpt.recipe.to_dict().items()
                       if getattr(self.recipe, key) != value}
            raise ConfigError(f"fine-tuning checkpoint {path} was trained with another recipe "
                              f"(stored -> now: {changed}); {fix}")
        if ckpt.data_fingerprint != self.data_fingerprint:
            raise ConfigError(f"fine-tuning checkpoint {path} was trained on data with fingerprint "
                              f"{ckpt.data_fingerprint}, not {self.data_fingerprint}; {fix}")
        self._restore(ckpt, path)

    def checkpoint(self) -> FinetuneCheckpoint:
        return FinetuneCheckpoint(**self._loop_state(), supernet_cfg=self.net.supernet_cfg, config=self.net.config,
                                  origin=self.origin, data_fingerprint=self.data_fingerprint)


LOG_EVERY = 20
"""Steps between progress-bar updates: the only times a step's loss is read on the host."""


def _train_epoch(run: _Loop, model: nn.Module, loader: DataLoader, losses: _Losses, *, epoch: int,
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
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress or _rank() != 0
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


def _validate(net: SpikformerSupernet, data: DataSplits, space: SearchSpace, device: torch.device,
              precision: str) -> dict[str, float]:
    """Validation accuracy and energy of the largest and the smallest subnet, scored as in search.

    Each subnet's BN statistics are recalibrated for the score (`SubnetEvaluator`); the
    supernet's own statistics, its active subnet, its mode and torch's random state are put
    back afterwards, so that validating does not change training.
    """
    buffers = {name: buffer.clone() for name, buffer in net.named_buffers()}  # BN statistics
    active, training = net.config, net.training
    net.eval()  # recalibration switches the BN layers alone to training mode
    try:
        # Data loaders draw their base seed from torch's global generator: keep training's stream.
        with _forked_rng(device):
            evaluator = SubnetEvaluator(net, data.train_eval, data.val, device=device,
                                        settings=EvaluationSettings(precision=precision))
            scores = {"largest": evaluator(space.largest()), "smallest": evaluator(space.smallest())}
    finally:
        with torch.no_grad():
            for name, buffer in net.named_buffers():
                buffer.copy_(buffers[name])
        net.set_subnet(active)
        net.train(training)
    return {f"{key}_{which}": value for which, score in scores.items()
            for key, value in (("val_accuracy", score.accuracy), ("val_energy_mj", score.energy.energy_mj))}


def _validate_subnet(net: Spikformer, val: Dataset, device: torch.device, precision: str,
                     evaluation: EvaluationSettings) -> dict[str, float]:
    """Validation accuracy and energy of a standalone network, in eval mode (its trained BN statistics).

    Its mode and torch's random state are put back afterwards, so that validating does not
    change training.
    """
    training = net.training
    net.eval()
    try:
        with _forked_rng(device), autocast(device, precision):
            accuracy, report = score_model(
                net, DataLoader(val, batch_size=evaluation.batch_size, shuffle=False),
                params=sum(p.numel() for p in net.parameters()), profile=evaluation.profile,
                first_layer=evaluation.first_layer)
    finally:
        net.train(training)
    return {"val_accuracy": accuracy, "val_energy_mj": report.energy_mj}


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


def _write_metrics(path: Path, history: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Write the whole history (so a resumed run's file matches its checkpoint)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    """An epoch's progress line: loss, learning rate and the validation accuracies it has."""
    line = f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, lr {row['lr']:.2e}"
    scores = [f"{key.removeprefix('val_accuracy').lstrip('_')} {value:.2%}".lstrip()
              for key, value in row.items() if key.startswith("val_accuracy")]
    return line + (f", val acc {', '.join(scores)}" if scores else "")


def _fit(run: _SupernetRun | _FinetuneRun, model: nn.Module, loader: DataLoader, losses: _Losses, *,
         device: torch.device, progress: bool, eval_every: int, validate: Callable[[], dict[str, float]],
         checkpoint: Path, columns: tuple[str, ...]) -> None:
    """Train from `run.epoch` to the recipe's last epoch; after each, validate (every `eval_every`
    epochs and after the last), checkpoint and write the metrics file (rank 0), report progress."""
    epochs = run.recipe.epochs
    for epoch in range(run.epoch, epochs):
        loss = _train_epoch(run, model, loader, losses, epoch=epoch, device=device, progress=progress)
        run.epoch = epoch + 1
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "lr": run.optimizer.param_groups[0]["lr"]}
        if eval_every > 0 and (run.epoch % eval_every == 0 or run.epoch == epochs) and _rank() == 0:
            row.update(validate())
        run.history.append(row)
        if _rank() == 0:
            save_checkpoint(checkpoint, run.checkpoint())
            _write_metrics(metrics_path(checkpoint), run.history, columns)
        if _world() > 1:
            dist.barrier()
        if progress and _rank() == 0:
            tqdm.write(_epoch_line(row, epochs))


def train_supernet(
    space: SearchSpace,
    dataset: DatasetSpec,
    recipe: Recipe,
    checkpoint: str | Path,
    *,
    resume: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    data: DataSplits | None = None,
    eval_every: int = 1,
    precision: str | None = None,
) -> SpikformerSupernet:
    """Train the supernet of `space` on `dataset` and checkpoint it after every epoch.

    Torch's global random state is seeded for training and given back afterwards: the
    caller's random stream is the same after this call as before it.

    Args:
        space: The search space (fixes the supernet's maxima and the genes sampled).
        dataset: The data set.
        recipe: Training hyper-parameters.
        checkpoint: Where the checkpoint is written (and read when resuming).
        resume: Continue from `checkpoint` if it exists. A checkpoint of another space, data
            shape or data set (`nas.data.fingerprint`) is refused with a ConfigError.
        seed: Seed of weights, data order and subnet draws.
        device: Where to train (default: cuda if available, else cpu).
        progress: Show progress (rank 0 only): a line per epoch, and a bar during each epoch
            when stderr is a terminal.
        data: Already loaded splits of `dataset` (skips loading).
        eval_every: Score the largest and the smallest subnet on the validation split every
            this many epochs and after the last (0: never). The scores join the epoch's
            history entry in the checkpoint and its row of `metrics_path(checkpoint)`.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast of training and validation
            (`nas.precision`; fp16 scales the loss); None: bf16 on a GPU that supports it,
            else fp32. A run resumes in the precision it is given.

    Returns:
        The trained supernet, in eval mode.
    """
    checkpoint = Path(checkpoint)
    device = default_device(device)
    precision = check_precision(precision, device)
    dataset = event_frames_for(space, dataset)
    data = data or load_dataset(dataset)
    data_fingerprint = fingerprint(data)
    supernet_cfg = space.supernet_config(in_channels=data.in_channels, img_size=data.img_size,
                                         num_classes=data.num_classes, event_input=data.frames is not None)
    with _seeded_rng(seed, device):
        net = SpikformerSupernet(supernet_cfg).to(device)
        model: nn.Module = net
        if _world() > 1:
            # Only a subnet shallower than the supernet leaves parameters out of the graph (the
            # blocks it skips); narrower ones use slices, which get (zero) gradients in full.
            model = DistributedDataParallel(net, find_unused_parameters=skips_blocks(space))
        loader = _train_loader(data.train, recipe, seed=seed, device=device)
        optimizer, scheduler = _optimizer_and_scheduler(net, recipe, len(loader))
        losses = _Losses.from_recipe(recipe, data.num_classes)
        run = _SupernetRun(space=space, supernet_cfg=supernet_cfg, dataset=dataset,
                           data_fingerprint=data_fingerprint, recipe=recipe, seed=seed, net=net, optimizer=optimizer,
                           scheduler=scheduler, loader_rng=loader.generator, subnet_rng=random.Random(seed),
                           precision=precision, scaler=grad_scaler(device, precision))
        if resume and checkpoint.exists():
            run.resume(load_checkpoint(checkpoint), checkpoint)
        _fit(run, model, loader, losses, device=device, progress=progress, eval_every=eval_every,
             validate=lambda: _validate(net, data, space, device, run.precision), checkpoint=checkpoint,
             columns=METRICS)
    net.set_subnet(supernet_cfg.largest_subnet())
    return net.eval()


def finetune_subnet(
    model: Spikformer,
    data: DataSplits,
    recipe: Recipe,
    checkpoint: str | Path,
    *,
    origin: dict[str, Any],
    resume: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    val: Dataset | None = None,
    eval_every: int = 1,
    precision: str | None = None,
    evaluation: EvaluationSettings = EvaluationSettings(),
) -> Spikformer:
    """Train one standalone subnet on from its inherited weights; checkpoint it after every epoch.

    The loop, checkpoints, metrics file and progress are supernet training's, with one
    network per step. Torch's global random state is seeded for training and given back
    afterwards.

    Args:
        model: The subnet with the weights it starts from (`models.extract_subnet` of a
            supernet whose BN statistics were recalibrated for it); trained in place.
        data: The data set's splits: trained on ``train``, validated on `val`.
        recipe: Fine-tuning hyper-parameters (`nas.recipes.finetune_recipe`).
        checkpoint: Where the checkpoint is written (and read when resuming); the per-epoch
            metrics go to `metrics_path(checkpoint)` (columns `FINETUNE_METRICS`).
        origin: Where the starting weights came from, in plain values (e.g. study, trial and
            supernet checkpoint); stored, and compared when resuming.
        resume: Continue from `checkpoint` if it exists. A checkpoint of another subnet or
            origin, another recipe or other data is refused with a ConfigError.
        seed: Seed of data order and augmentation.
        device: Where to train (default: cuda if available, else cpu).
        progress: Show a progress bar and a line per epoch.
        val: The validation images (default: ``data.val``).
        eval_every: Score the subnet on `val` every this many epochs and after the last (0: never).
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast (None: bf16 on a GPU that supports it, else fp32).
        evaluation: Batch size, energy profile and first-layer convention of validation.

    Returns:
        `model`, trained, in eval mode.
    """
    checkpoint = Path(checkpoint)
    device = default_device(device)
    precision = check_precision(precision, device)
    val = data.val if val is None else val
    with _seeded_rng(seed, device):
        net = model.to(device)
        loader = _train_loader(data.train, recipe, seed=seed, device=device)
        optimizer, scheduler = _optimizer_and_scheduler(net, recipe, len(loader))
        run = _FinetuneRun(net=net, recipe=recipe, seed=seed, optimizer=optimizer, scheduler=scheduler,
                           loader_rng=loader.generator, precision=precision, scaler=grad_scaler(device, precision),
                           origin=origin, data_fingerprint=fingerprint(data))
        if resume and checkpoint.exists():
            run.resume(load_finetune_checkpoint(checkpoint), checkpoint)
        _fit(run, net, loader, _Losses.from_recipe(recipe, data.num_classes), device=device, progress=progress,
             eval_every=eval_every, validate=lambda: _validate_subnet(net, val, device, precision, evaluation),
             checkpoint=checkpoint, columns=FINETUNE_METRICS)
    return net.eval()


def event_frames_for(space: SearchSpace, dataset: DatasetSpec) -> DatasetSpec:
    """`dataset` with the frames its event data are integrated into: the space's largest T
    unless it says otherwise (static image data sets are returned as they are).

    Raises:
        ConfigError: for fewer frames than the space's largest T (every subnet's T steps
            are integrated from the frames, so none may have more steps than frames).
    """
    if dataset.name not in EVENT_DATASETS:
        return dataset
    largest_t = max(space.genes["time_steps"])
    if dataset.frames is None:
        return dataclasses.replace(dataset, frames=largest_t)
    if dataset.frames < largest_t:
        raise ConfigError(f"{dataset.name}: frames={dataset.frames} is below the space's largest T={largest_t}; "
                          f"integrate at least {largest_t} frames per sample")
    return dataset


def _to_lists(value: Any) -> Any:
    """Python RNG state with tuples as lists (plain containers for the checkpoint)."""
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value
