"""Training: the supernet (one random subnet per batch over every gene, neuron genes
included), and one chosen subnet fine-tuned from its inherited weights.

Both run the same loop (`_fit`, `train_epoch`) and use timm for what it already does
(AdamW without decay on biases and norms, warmup + cosine schedule, Mixup, soft-target and
label-smoothing losses). Checkpoints are written atomically after every epoch and hold only
tensors and plain containers, so they load with ``torch.load(weights_only=True)``;
``resume=True`` continues from the last one.

Run supernet training under ``torchrun --nproc-per-node N`` for data-parallel training:
every rank draws the same subnet at every step (same seed, same number of draws).
Fine-tuning runs in one process.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from models import ConfigError, Spikformer, SpikformerSupernet, SubnetConfig, SupernetConfig

from .checkpoint import (
    FinetuneCheckpoint,
    SupernetCheckpoint,
    load_checkpoint,
    load_finetune_checkpoint,
)
from .data import DataSplits, fingerprint, fingerprint_matches, load_dataset
from .dataspec import EVENT_DATASETS, DatasetSpec
from .device import default_device
from .distributed import torchrun_process_group, world
from .evaluate import SubnetEvaluator
from .precision import autocast, check_precision, grad_scaler
from .recipes import Recipe
from .scoring import score_model
from .settings import EvaluationSettings
from .space import SearchSpace
from .train_loop import (
    FINETUNE_METRICS,
    LOG_EVERY,
    METRICS,
    Loop,
    Losses,
    fit,
    forked_rng,
    metrics_path,
    optimizer_and_scheduler,
    seeded_rng,
    train_loader,
)

__all__ = ["FINETUNE_METRICS", "LOG_EVERY", "METRICS", "event_frames_for", "finetune_subnet", "metrics_path",
           "skips_blocks", "torchrun_process_group", "train_supernet"]


def skips_blocks(space: SearchSpace) -> bool:
    """Whether a subnet of `space` can run fewer blocks than the supernet holds."""
    return min(space.genes["depth"]) < max(space.genes["depth"])


def _subnets(space: SearchSpace, rng: random.Random, sandwich: bool) -> list[SubnetConfig]:
    if sandwich:
        return [space.largest(), space.smallest(), space.sample(rng)]
    return [space.sample(rng)]


@dataclass(kw_only=True)
class _SupernetRun(Loop):
    """Supernet training: what it was asked for, and the subnet draws."""

    net: SpikformerSupernet
    space: SearchSpace
    supernet_cfg: SupernetConfig
    dataset: DatasetSpec
    data: DataSplits
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
        ckpt.check_data(path, self.dataset, self.data,
                        fix="resume it on the data it was trained on, or choose another --output")
        self._restore(ckpt, path)
        self.subnet_rng.setstate(_to_tuple(ckpt.rng["subnets"]))

    def checkpoint(self) -> SupernetCheckpoint:
        state = self._loop_state()
        state["rng"]["subnets"] = _to_lists(self.subnet_rng.getstate())
        return SupernetCheckpoint(**state, space=self.space, supernet_cfg=self.supernet_cfg, dataset=self.dataset,
                                  data_fingerprint=self.data_fingerprint)


@dataclass(kw_only=True)
class _FinetuneRun(Loop):
    """Fine-tuning one subnet: which one, from where, on what data."""

    origin: dict[str, Any]
    data: DataSplits
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
        if not fingerprint_matches(ckpt.data_fingerprint, self.data):
            raise ConfigError(f"fine-tuning checkpoint {path} was trained on data with fingerprint "
                              f"{ckpt.data_fingerprint}, not {self.data_fingerprint}; {fix}")
        self._restore(ckpt, path)

    def checkpoint(self) -> FinetuneCheckpoint:
        return FinetuneCheckpoint(**self._loop_state(), supernet_cfg=self.net.supernet_cfg, config=self.net.config,
                                  origin=self.origin, data_fingerprint=self.data_fingerprint)


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
        with forked_rng(device):
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
        with forked_rng(device), autocast(device, precision):
            accuracy, report = score_model(
                net, DataLoader(val, batch_size=evaluation.batch_size, shuffle=False),
                params=sum(p.numel() for p in net.parameters()), profile=evaluation.profile,
                first_layer=evaluation.first_layer)
    finally:
        net.train(training)
    return {"val_accuracy": accuracy, "val_energy_mj": report.energy_mj}


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
    with seeded_rng(seed, device):
        net = SpikformerSupernet(supernet_cfg).to(device)
        model: nn.Module = net
        if world() > 1:
            # Only a subnet shallower than the supernet leaves parameters out of the graph (the
            # blocks it skips); narrower ones use slices, which get (zero) gradients in full.
            model = DistributedDataParallel(net, find_unused_parameters=skips_blocks(space))
        loader = train_loader(data.train, recipe, seed=seed, device=device)
        optimizer, scheduler = optimizer_and_scheduler(net, recipe, len(loader))
        losses = Losses.from_recipe(recipe, data.num_classes)
        run = _SupernetRun(space=space, supernet_cfg=supernet_cfg, dataset=dataset, data=data,
                           data_fingerprint=data_fingerprint, recipe=recipe, seed=seed, net=net, optimizer=optimizer,
                           scheduler=scheduler, loader_rng=loader.generator, subnet_rng=random.Random(seed),
                           precision=precision, scaler=grad_scaler(device, precision))
        if resume and checkpoint.exists():
            run.resume(load_checkpoint(checkpoint), checkpoint)
        fit(run, model, loader, losses, device=device, progress=progress, eval_every=eval_every,
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
    with seeded_rng(seed, device):
        net = model.to(device)
        loader = train_loader(data.train, recipe, seed=seed, device=device)
        optimizer, scheduler = optimizer_and_scheduler(net, recipe, len(loader))
        run = _FinetuneRun(net=net, recipe=recipe, seed=seed, optimizer=optimizer, scheduler=scheduler,
                           loader_rng=loader.generator, precision=precision, scaler=grad_scaler(device, precision),
                           origin=origin, data=data, data_fingerprint=fingerprint(data))
        if resume and checkpoint.exists():
            run.resume(load_finetune_checkpoint(checkpoint), checkpoint)
        fit(run, net, loader, Losses.from_recipe(recipe, data.num_classes), device=device, progress=progress,
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
