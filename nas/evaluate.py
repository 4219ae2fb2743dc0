"""Scoring a subnet with inherited weights: BN recalibration, accuracy and energy in one pass.

Weight sharing across widths and neuron settings breaks the supernet's shared BN
statistics, so before a subnet is scored its statistics are recomputed on a few training
batches (fresh cumulative averages); accuracy is then measured in eval mode, which makes
it independent of the evaluation batch size. Energy is measured in the same pass.

The evaluation split is streamed through a `torch.utils.data.DataLoader`, so memory holds
the model and a batch or two, however large the split. Optionally a fixed stratified
subset of it is scored (`EvaluationSettings.eval_images`), and subnets that cannot matter
are rejected part-way (`EvaluationSettings.early_rejection`, bounds in `nas.rejection`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from energy import DEVICES, EnergyMonitor, EnergyReport, lemaire_energy
from energy.report import PJ_TO_MJ
from models import ConfigError, SpikformerSupernet, SubnetConfig, count_params, extract_subnet

from .data import split_labels, stratified_subset
from .precision import autocast, check_precision
from .rejection import RejectionRule, accuracy_upper_bound, energy_lower_bound
from .scoring import recalibrate_bn, running_counts
from .settings import EvaluationSettings

ORDER_SEED = 0
"""Seed of the fixed shuffled order in which early rejection scores the images."""


@dataclass(frozen=True)
class SubnetScore:
    """What one evaluation of a subnet found.

    Attributes:
        config: The subnet (active genes).
        accuracy: Top-1 accuracy on the images scored, in [0, 1].
        energy: Energy per image on the images scored, under the study's energy model
            (``energy.model``).
        params: Parameters of the subnet.
        seconds: Wall time of the evaluation (recalibration included).
        rejected: Whether early rejection stopped the evaluation: `accuracy` and `energy`
            then cover ``energy.images`` images only.
        accuracy_bound: Rejected only: the upper bound on the full accuracy that rejected it.
        energy_bound_mj: Rejected only: the lower bound on the full energy (mJ per image).
        energies: Complete only: the energy under every model recorded (`energy.ENERGY_MODELS`),
            the study's included; ``lemaire`` prices components, not layers.
    """

    config: SubnetConfig
    accuracy: float
    energy: EnergyReport
    params: int
    seconds: float
    rejected: bool = False
    accuracy_bound: float | None = None
    energy_bound_mj: float | None = None
    energies: dict[str, EnergyReport] = field(default_factory=dict)

    @property
    def arch_id(self) -> str:
        return self.config.arch_id

    @property
    def images_scored(self) -> int:
        """Images the accuracy was measured on (``lemaire`` prices a subset of them)."""
        return self._measured.images

    @property
    def _measured(self) -> EnergyReport:
        """The report of the evaluation pass itself (``ops`` where recorded)."""
        return self.energies.get("ops", self.energy)

    def layer_table(self) -> pd.DataFrame:
        """Per-layer energy of a complete score: a row per synaptic layer and per neuron layer,
        ``energy_mj`` and ``energy_share`` under the study's model (``ops`` for ``lemaire``,
        which prices no single layer), and ``energy_mj_<model>`` for every model priced per layer."""
        per_layer = {m: r for m, r in self.energies.items() if m != "lemaire"} or {self.energy.model: self.energy}
        widest = max(per_layer.values(), key=lambda r: len(r.layers))
        table = widest.layers.loc[:, ["layer", "kind", "dense_macs", "input_rate", "ops"]].copy()
        for model, report in per_layer.items():
            energy = report.layers.set_index("layer")["energy_mj"]
            table[f"energy_mj_{model}"] = table["layer"].map(energy).fillna(0.0).to_numpy()
        own = self.energy.model if self.energy.model in per_layer else next(iter(per_layer))
        table.insert(5, "energy_mj", table[f"energy_mj_{own}"])
        total = table["energy_mj"].sum()
        table.insert(6, "energy_share", table["energy_mj"] / total if total > 0 else 0.0)
        return table

    def attrs(self) -> dict[str, Any]:
        """Scalar results for an Optuna trial's user attrs.

        A rejected score's accuracy and energy are partial: they are recorded as
        ``partial_accuracy`` and ``partial_energy_mj``, next to the bounds and ``rejected``,
        so that nothing reading ``accuracy`` or ``energy_mj`` mistakes them for final ones.
        """
        common = {
            "params": self.params,
            "arch_id": self.arch_id,
            "config": self.config.active().to_json(),
            "eval_seconds": self.seconds,
            "eval_images_scored": self.images_scored,
        }
        if self.rejected:
            return {**common, "rejected": True, "partial_accuracy": self.accuracy,
                    "partial_energy_mj": self.energy.energy_mj, "accuracy_bound": self.accuracy_bound,
                    "energy_bound_mj": self.energy_bound_mj}
        measured = self._measured
        attrs = {
            "accuracy": self.accuracy,
            "energy_mj": self.energy.energy_mj,
            "energy_model": self.energy.model,
            "energies_mj": {model: report.energy_mj for model, report in self.energies.items()},
            "sops": measured.sops,
            "macs": measured.macs,
            "firing_rate": measured.firing_rate,
            **common,
        }
        lemaire = self.energies.get("lemaire")
        if lemaire is not None:
            attrs["lemaire_components_mj"] = dict(zip(lemaire.layers["layer"], lemaire.layers["energy_mj"]))
        return attrs


def _calibration_batches(dataset: Dataset, batch_size: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` batches of `dataset`, held in memory."""
    return list(itertools.islice(DataLoader(dataset, batch_size=batch_size, shuffle=False), count))


def _fixed_energy_mj(report: EnergyReport) -> float:
    """The energy per image that is the same for every image: of the layers charged as MACs,
    and under a device model of the neuron updates (their routed spikes vary)."""
    layers = report.layers
    fixed = float(layers.loc[layers["kind"] == "MAC", "energy_mj"].sum())
    if report.model in DEVICES:
        updates = float(layers.loc[layers["kind"] == "NEURON", "ops"].sum())
        fixed += DEVICES[report.model].energy_pj(0.0, updates, 0.0) * PJ_TO_MJ
    return fixed


class SubnetEvaluator:
    """Scores subnets of a trained supernet on a held-out split, with a per-process cache.

    The split is streamed through a `DataLoader` (``settings.loader_workers`` reader
    processes; pinned memory and asynchronous copies on CUDA), in a fixed order, so scores
    are deterministic and memory holds a batch or two, not the split. The BN-recalibration
    batches, by contrast, are read once and kept: they are few (``calib_batches x
    calib_batch_size`` images, 256 by default), and every subnet is then recalibrated on
    exactly the same images, even from a calibration set with random transforms.

    With ``settings.eval_images`` the evaluator scores a fixed stratified subset of the
    split instead (`nas.data.stratified_subset`, seed 0): the same class proportions, the
    same images for every subnet and every worker of a study.

    With ``settings.early_rejection`` the images are scored in a fixed shuffled order (seed
    `ORDER_SEED`), so that any prefix of them is a uniform sample of all; accuracy does not
    depend on the order, energy only up to float round-off. A call given a `reject` rule
    then checks it after every batch (see `__call__`).

    Args:
        net: The trained supernet (left in eval mode on the last subnet scored).
        calibration: Training images without augmentation, for BN recalibration.
        dataset: The split to score on (the validation split during a search).
        settings: Recalibration, evaluation batches and images, energy profile, early rejection.
        device: Where to run; defaults to the device of `net`.

    Raises:
        ConfigError: for ``eval_images`` above the split's size or below its number of classes.
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
        self.precision = check_precision(settings.precision, self.device)
        self._calibration = _calibration_batches(calibration, settings.calib_batch_size, settings.calib_batches)
        self.scored_split = _scored_split(dataset, settings)
        workers = settings.loader_workers
        self._loader = DataLoader(self.scored_split, batch_size=settings.batch_size, shuffle=False,
                                  num_workers=workers, persistent_workers=workers > 0,
                                  pin_memory=self.device.type == "cuda")
        total, step = len(self.scored_split), settings.batch_size
        first_check = -(-settings.rejection_min_images // step) * step
        self._checks = max(1, len(range(first_check, total, step)))
        self._cache: dict[str, SubnetScore] = {}
        self._lemaire_images: list[torch.Tensor] | None = None

    @property
    def images(self) -> int:
        """Images a full evaluation scores."""
        return len(self.scored_split)

    @torch.no_grad()
    def __call__(self, config: SubnetConfig, *, reject: RejectionRule | None = None) -> SubnetScore:
        """Recalibrate, then score `config`; a config scored in full before comes from the cache.

        Args:
            config: The subnet.
            reject: Early rejection: after each batch, once ``settings.rejection_min_images``
                images are scored, it is given an upper bound on the full accuracy and a lower
                bound on the full energy (`nas.rejection`); if it returns True, the evaluation
                stops and the partial score comes back with ``rejected=True`` (not cached).
        """
        hit = self._cache.get(config.arch_id)
        if hit is not None:
            return hit
        start = time.perf_counter()
        net, settings, total = self.net, self.settings, self.images
        net.set_subnet(config)
        with autocast(self.device, self.precision):
            recalibrate_bn(net, self._calibration, self.device)
        net.eval()
        params = count_params(net.supernet_cfg, config)
        models = settings.energy_models
        energies: dict[str, EnergyReport] = {}
        if "lemaire" in models:
            # Priced apart, on the standalone subnet, before the scoring pass: under `lemaire`
            # early rejection then knows the subnet's exact energy from the start.
            with autocast(self.device, self.precision):
                energies["lemaire"] = lemaire_energy(extract_subnet(net, config).eval(), self._energy_images(),
                                                     params=params)
        own = settings.energy_model
        trace_models = tuple(m for m in models if m != "lemaire")
        correct = scored = 0
        with (EnergyMonitor(net, profile=settings.profile, first_layer=settings.first_layer) as monitor,
              autocast(self.device, self.precision)):
            for correct, scored in running_counts(net, self._loader, self.device):
                if reject is None or not settings.rejection_min_images <= scored < total:
                    continue
                partial = monitor.report(params=params, model="ops" if own == "lemaire" else own)
                accuracy_bound = accuracy_upper_bound(correct, scored, total, confidence=settings.rejection_confidence,
                                                      checks=self._checks)
                if own == "lemaire":  # known exactly already
                    energy, measured = energies["lemaire"], {"ops": partial}
                    energy_bound = energy.energy_mj
                else:
                    energy, measured = partial, {}
                    energy_bound = energy_lower_bound(partial.energy_mj, _fixed_energy_mj(partial), scored, total)
                if reject(accuracy_bound, energy_bound):
                    return SubnetScore(config=config.active(), accuracy=correct / scored, energy=energy,
                                       params=params, seconds=time.perf_counter() - start, rejected=True,
                                       accuracy_bound=accuracy_bound, energy_bound_mj=energy_bound, energies=measured)
        energies = {**monitor.reports(params=params, models=trace_models), **energies}
        score = SubnetScore(
            config=config.active(),
            accuracy=correct / scored,
            energy=energies[own],
            params=params,
            seconds=time.perf_counter() - start,
            energies=energies,
        )
        self._cache[config.arch_id] = score
        return score

    def _energy_images(self) -> list[torch.Tensor]:
        """The images ``lemaire`` prices, one at a time: the first `energy_images` of a
        stratified subset of the scored split (the same for every subnet), on the device."""
        if self._lemaire_images is None:
            split = self.scored_split
            size = min(self.settings.energy_images, len(split))
            try:
                positions = stratified_subset(split_labels(split), size)
            except (ConfigError, ValueError):  # fewer images than classes: take the first ones
                positions = np.arange(size)
            self._lemaire_images = [split[int(i)][0].to(self.device) for i in positions]
        return self._lemaire_images


def _scored_split(dataset: Dataset, settings: EvaluationSettings) -> Dataset:
    """The images an evaluator scores, in the order it scores them (see `SubnetEvaluator`)."""
    size = settings.eval_images
    positions = np.arange(len(dataset))
    if size is not None and size != len(dataset):
        if size > len(dataset):
            raise ConfigError(f"eval_images={size} is more than the {len(dataset)} images of the validation split; "
                              f"choose at most {len(dataset)}, or None for the whole split")
        labels = split_labels(dataset)
        classes = len(np.unique(labels))
        if size < classes:
            raise ConfigError(f"eval_images={size} is fewer than the {classes} classes of the validation split; "
                              f"choose {classes}..{len(dataset)} (a stratified subset keeps every class), "
                              "or None for the whole split")
        positions = stratified_subset(labels, size)
    if settings.early_rejection:
        positions = np.random.default_rng(ORDER_SEED).permutation(positions)
    if len(positions) == len(dataset) and (positions == np.arange(len(dataset))).all():
        return dataset
    return Subset(dataset, positions.tolist())
