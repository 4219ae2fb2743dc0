"""Scoring a subnet with inherited weights: BN recalibration, accuracy and energy in one pass.

Weight sharing across widths and neuron settings breaks the supernet's shared BN
statistics, so before a subnet is scored its statistics are recomputed on a few training
batches (fresh cumulative averages); accuracy is then measured in eval mode, which makes
it independent of the evaluation batch size. Energy is measured in the same pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from energy import EnergyMonitor, EnergyProfile, EnergyReport
from models import SpikformerSupernet, SubnetConfig, count_params

from .settings import EvaluationSettings


@dataclass(frozen=True)
class SubnetScore:
    """What one evaluation of a subnet found."""

    config: SubnetConfig
    accuracy: float
    energy: EnergyReport
    params: int
    seconds: float

    @property
    def arch_id(self) -> str:
        return self.config.arch_id

    def attrs(self) -> dict[str, Any]:
        """Scalar results for an Optuna trial's user attrs."""
        return {
            "accuracy": self.accuracy,
            "energy_mj": self.energy.energy_mj,
            "sops": self.energy.sops,
            "macs": self.energy.macs,
            "params": self.params,
            "firing_rate": self.energy.firing_rate,
            "arch_id": self.arch_id,
            "config": self.config.active().to_json(),
            "eval_seconds": self.seconds,
        }


def _batches(dataset: Dataset, batch_size: int, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out = []
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        out.append(batch)
    return out


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> None:
    """Recompute every BatchNorm's running statistics as a plain average over `batches`."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for x, _ in batches:
            model(x.to(device, non_blocking=True))
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)


@torch.no_grad()
def score_model(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    params: int,
    profile: str | EnergyProfile | None = None,
    device: torch.device | str | None = None,
) -> tuple[float, EnergyReport]:
    """Top-1 accuracy of `model` on `batches` and its energy per image, measured in one pass.

    The model runs in the mode it is in: put it in eval mode first.

    Args:
        model: Any classifier of images; its synaptic layers are measured by `energy.EnergyMonitor`.
        batches: ``(images, labels)`` pairs; the labels stay on the CPU.
        params: Parameter count written into the report.
        profile: Energy per operation (see `energy.get_profile`).
        device: Where the images go; defaults to the model's device.

    Returns:
        Accuracy in [0, 1] and the energy report.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    correct = total = 0
    with EnergyMonitor(model, profile=profile) as monitor:
        for x, y in batches:
            pred = model(x.to(device, non_blocking=True)).argmax(dim=1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    return correct / total, monitor.report(params=params)


class SubnetEvaluator:
    """Scores subnets of a trained supernet on a held-out split, with a per-process cache.

    Args:
        net: The trained supernet (left in eval mode on the last subnet scored).
        calibration: Training images without augmentation, for BN recalibration.
        dataset: The split to score on (the validation split during a search).
        settings: Recalibration batches, evaluation batch size and energy profile.
        device: Where to run; defaults to the device of `net`.
    """

    def __init__(
        self,
        net: SpikformerSupernet,
        calibration: Dataset,
        dataset: Dataset,
        *,
        settings: EvaluationSettings = EvaluationSettings(),
        device: torch.device | str | None = None,
    ) -> None:
        self.net = net
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.settings = settings
        # Fixed batches keep the scores deterministic and skip the loader on every call.
        self._calibration = _batches(calibration, settings.calib_batch_size, settings.calib_batches)
        self._eval = _batches(dataset, settings.batch_size)
        self._cache: dict[str, SubnetScore] = {}

    def __call__(self, config: SubnetConfig) -> SubnetScore:
        """Recalibrate, then score `config`; a config seen before comes from the cache."""
        hit = self._cache.get(config.arch_id)
        if hit is not None:
            return hit
        start = time.perf_counter()
        net = self.net
        net.set_subnet(config)
        recalibrate_bn(net, self._calibration, self.device)
        net.eval()
        params = count_params(net.supernet_cfg, config)
        accuracy, energy = score_model(net, self._eval, params=params, profile=self.settings.profile,
                                       device=self.device)
        score = SubnetScore(
            config=config.active(),
            accuracy=accuracy,
            energy=energy,
            params=params,
            seconds=time.perf_counter() - start,
        )
        self._cache[config.arch_id] = score
        return score
