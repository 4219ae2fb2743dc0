"""Supernet training: one random subnet per batch over every gene, neuron genes included.

Uses timm for what it already does (AdamW without decay on biases and norms, warmup +
cosine schedule, Mixup, soft-target and label-smoothing losses). Checkpoints are written
atomically after every epoch and hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)``; ``resume=True`` continues from the last one.

Run under ``torchrun --nproc-per-node N`` for data-parallel training: every rank draws
the same subnet at every step (same seed, same number of draws).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from models import SpikformerSupernet, SubnetConfig

from .checkpoint import SupernetCheckpoint, load_checkpoint, save_checkpoint
from .data import DataSplits, load_dataset
from .dataspec import DatasetSpec
from .recipes import Recipe
from .space import SearchSpace

def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _subnets(space: SearchSpace, rng: random.Random, sandwich: bool) -> list[SubnetConfig]:
    if sandwich:
        return [space.largest(), space.smallest(), space.sample(rng)]
    return [space.sample(rng)]


def train_supernet(
    space: SearchSpace,
    dataset: DatasetSpec,
    recipe: Recipe,
    checkpoint: str | Path,
    *,
    resume: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    data: DataSplits | None = None,
) -> SpikformerSupernet:
    """Train the supernet of `space` on `dataset` and checkpoint it after every epoch.

    Args:
        space: The search space (fixes the supernet's maxima and the genes sampled).
        dataset: The data set.
        recipe: Training hyper-parameters.
        checkpoint: Where the checkpoint is written (and read when resuming).
        resume: Continue from `checkpoint` if it exists.
        seed: Seed of weights, data order and subnet draws.
        device: Where to train.
        progress: Show a progress bar (rank 0 only).
        data: Already loaded splits of `dataset` (skips loading).

    Returns:
        The trained supernet, in eval mode.
    """
    checkpoint = Path(checkpoint)
    device = torch.device(device)
    data = data or load_dataset(dataset)
    supernet_cfg = space.supernet_config(in_channels=data.in_channels, img_size=data.img_size,
                                         num_classes=data.num_classes)
    torch.manual_seed(seed)
    net = SpikformerSupernet(supernet_cfg).to(device)
    model: nn.Module = net
    if _world() > 1:
        model = DistributedDataParallel(net, find_unused_parameters=True)

    sampler = DistributedSampler(data.train, shuffle=True, seed=seed, drop_last=True) if _world() > 1 else None
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        data.train, batch_size=recipe.batch_size, shuffle=sampler is None, sampler=sampler,
        generator=generator, drop_last=True, num_workers=recipe.num_workers,
        persistent_workers=recipe.num_workers > 0, pin_memory=device.type == "cuda",
    )
    if len(loader) == 0:
        raise ValueError(f"batch_size={recipe.batch_size} is larger than the training split ({len(data.train)} images)")
    optimizer = create_optimizer_v2(net, opt="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=recipe.epochs, warmup_epochs=recipe.warmup_epochs,
        warmup_lr=recipe.warmup_lr, min_lr=recipe.min_lr, step_on_epochs=False, updates_per_epoch=len(loader),
    )
    mixup = None
    if recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0:
        mixup = Mixup(mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                      label_smoothing=recipe.label_smoothing, num_classes=data.num_classes)
    soft_loss = SoftTargetCrossEntropy()
    hard_loss = LabelSmoothingCrossEntropy(recipe.label_smoothing) if recipe.label_smoothing > 0 else nn.CrossEntropyLoss()
    rng = random.Random(seed)
    start_epoch, history = 0, []

    if resume and checkpoint.exists():
        ckpt = load_checkpoint(checkpoint)
        if ckpt.space.to_dict() != space.to_dict() or ckpt.supernet_cfg != supernet_cfg:
            raise ValueError(f"checkpoint {checkpoint} was trained for another space or data set; "
                             "resume it with the same settings or choose another --output")
        net.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        scheduler.load_state_dict(ckpt.scheduler)
        torch.set_rng_state(ckpt.rng["torch"])
        generator.set_state(ckpt.rng["loader"])
        rng.setstate(_to_tuple(ckpt.rng["subnets"]))
        start_epoch, history = ckpt.epoch, list(ckpt.history)

    for epoch in range(start_epoch, recipe.epochs):
        net.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        use_mixup = mixup is not None and (recipe.mixup_off_epoch is None or epoch < recipe.mixup_off_epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress or _rank() != 0,
                   leave=False, dynamic_ncols=True)
        total, steps = 0.0, 0
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_mixup:
                x, y = mixup(x, y)
            criterion = soft_loss if use_mixup else hard_loss
            configs = _subnets(space, rng, recipe.sandwich)
            optimizer.zero_grad(set_to_none=True)
            for i, config in enumerate(configs):
                net.set_subnet(config)
                last = i == len(configs) - 1
                if isinstance(model, DistributedDataParallel) and not last:
                    with model.no_sync():
                        loss = criterion(model(x), y) / len(configs)
                        loss.backward()
                else:
                    loss = criterion(model(x), y) / len(configs)
                    loss.backward()
                total += loss.item()
            optimizer.step()
            steps += 1
            scheduler.step_update(epoch * len(loader) + steps)
            bar.set_postfix(loss=f"{total / steps:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        scheduler.step(epoch + 1)
        history.append({"epoch": epoch + 1, "loss": total / max(steps, 1), "lr": optimizer.param_groups[0]["lr"]})
        if _rank() == 0:
            save_checkpoint(checkpoint, SupernetCheckpoint(
                epoch=epoch + 1,
                model=net.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                rng={"torch": torch.get_rng_state(), "loader": generator.get_state(),
                     "subnets": _to_lists(rng.getstate())},
                space=space,
                supernet_cfg=supernet_cfg,
                dataset=dataset,
                recipe=recipe,
                seed=seed,
                history=list(history),
            ))
        if _world() > 1:
            dist.barrier()
        if progress and _rank() == 0:
            tqdm.write(f"epoch {epoch + 1}/{recipe.epochs}: loss {history[-1]['loss']:.4f}")
    net.set_subnet(supernet_cfg.largest_subnet())
    return net.eval()


def _to_lists(value: Any) -> Any:
    """Python RNG state with tuples as lists (plain containers for the checkpoint)."""
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value

