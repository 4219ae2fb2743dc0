"""Energy models: what a forward pass costs on the hardware a user targets.

Every model prices the same network and the same images; they differ in what they charge.

- ``ops``: the Spikformer convention (45 nm operation prices, Horowitz ISSCC 2014): E_MAC per
  multiply-accumulate of a real-valued layer, E_AC per synaptic operation (SOP) of a
  spike-driven one. Nothing for memory or neurons. Reproduces the Spikformer appendix's
  tables (`analytic.appendix_energy`). Measured by `monitor.EnergyMonitor`.
- ``loihi``, ``spinnaker2``: a neuromorphic chip's published cost per synaptic event, per
  neuron update and per spike routed (`DEVICES`). Priced from the same measurement as ``ops``.
- ``lemaire``: compute plus SRAM accesses priced by buffer size (Lemaire et al. 2022),
  counted by spikingjelly's `LemaireEnergyProfiler` on the extracted standalone subnet,
  one image at a time (`lemaire_energy`).

Rules we apply the same way under every model, where a profiler or a device table has none:

- *Attention products* (Q @ K^T and (Q K^T) @ V of spiking self-attention, two spike
  matrices): SOPs = input rate x dense MACs (Q's rate for the first, V's for the second), as
  the Spikformer appendix counts them, charged at the model's price of one synaptic
  accumulate (E_AC, the device's synaptic event, Lemaire's 32-bit add).
- *Real-valued layers* (the first conv of a static image, the head on averaged features):
  their dense MACs, charged at the model's price of a MAC (a device: one synaptic event per
  MAC), once per image or at every step as the study's first-layer convention says
  (``lemaire`` counts the first conv as it is computed: once per image).
- *Elastic slicing* costs nothing: a subnet is priced as the standalone network it exports to.
- *BatchNorm* folds into the layer before it at inference; *max pooling* and the residual
  additions are not charged (no model here prices them).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
from spikingjelly.activation_based import functional
from torch import nn

from .report import PJ_TO_MJ, EnergyReport, assemble_report

DEFAULT_ENERGY_MODEL = "ops"


@dataclass(frozen=True)
class DeviceCosts:
    """A neuromorphic chip's published energy costs, in pJ.

    Attributes:
        name: The model's name (``--energy-model``).
        title: The chip, as printed next to a figure.
        e_synop_pj: One synaptic event: a spike delivered to one synapse (read its weight,
            add it to the membrane).
        e_neuron_pj: One neuron update: a neuron's membrane at one time step, charged for
            every neuron at every step whether it spikes or not.
        e_spike_pj: One spike routed from its neuron to the core that holds its synapses
            (0 where the source gives no figure).
        source: Where the figures come from.
    """

    name: str
    title: str
    e_synop_pj: float
    e_neuron_pj: float
    e_spike_pj: float
    source: str

    def energy_pj(self, events, updates, spikes):
        """pJ of `events` synaptic events, `updates` neuron updates and `spikes` spikes routed
        (numbers, or pandas columns of them)."""
        return events * self.e_synop_pj + updates * self.e_neuron_pj + spikes * self.e_spike_pj


DEVICES = {
    "loihi": DeviceCosts(
        name="loihi", title="Intel Loihi", e_synop_pj=23.6, e_neuron_pj=81.0, e_spike_pj=3.5,
        source=("Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', IEEE Micro "
                "38(1):82-99, 2018, Table 1: synaptic spike operation 23.6 pJ (minimum), neuron update "
                "81 pJ (active; 52 pJ inactive), spike energy 3.5 pJ per tile hop (1.7 pJ within a tile)"),
    ),
    "spinnaker2": DeviceCosts(
        name="spinnaker2", title="SpiNNaker 2", e_synop_pj=450.0, e_neuron_pj=2190.0, e_spike_pj=0.0,
        source=("Hoeppner et al., 'Dynamic power management for neuromorphic many-core systems', IEEE TCAS-I "
                "66(8):2973-2986, 2019 (arXiv 1903.08941): 450 pJ per synaptic event and 2.19 nJ per neuron "
                "update at 0.50 V; no separate figure per routed spike"),
    ),
}
"""Neuromorphic devices, by model name. KerasSpiking's `ModelEnergy` uses the same sources
(it adds Loihi's 3.5 pJ hop to every synaptic event instead of to every spike)."""


@dataclass(frozen=True)
class EnergyModelInfo:
    """One energy model: its name, what it charges, where its prices come from.

    Attributes:
        name: ``--energy-model`` value.
        charges: What the model charges, in a sentence.
        source: The publication its prices come from.
        every_trial: Recorded for every trial (cheap); otherwise only when the study asks for it.
    """

    name: str
    charges: str
    source: str
    every_trial: bool


ENERGY_MODELS = {
    "ops": EnergyModelInfo(
        name="ops",
        charges="E_MAC per MAC of real-valued layers, E_AC per synaptic operation; no memory, no neurons",
        source="Horowitz, ISSCC 2014 (45 nm: 4.6 / 0.9 pJ in fp32); the Spikformer appendix's convention",
        every_trial=True,
    ),
    "lemaire": EnergyModelInfo(
        name="lemaire",
        charges=("32-bit adds (0.1 pJ) and multiplies (3.1 pJ), address arithmetic, and every SRAM read and "
                 "write of inputs, weights and membrane potentials priced by buffer size"),
        source="Lemaire et al., 'An analytical estimation of spiking neural networks energy efficiency', "
               "ICONIP 2022 (arXiv 2210.13107), as spikingjelly's LemaireEnergyProfiler counts it",
        every_trial=False,
    ),
    **{name: EnergyModelInfo(
        name=name,
        charges=(f"{d.e_synop_pj:g} pJ per synaptic event, {d.e_neuron_pj:g} pJ per neuron update (every neuron, "
                 f"every step)" + (f", {d.e_spike_pj:g} pJ per spike routed" if d.e_spike_pj else "")),
        source=d.source, every_trial=True,
    ) for name, d in DEVICES.items()},
}
"""Every energy model, by name. ``lemaire`` is recorded only on request: its profiler sizes
its buffers from the tensors it sees, so it runs one image at a time on an extracted subnet,
a second pass over `EvaluationSettings.energy_images` images that costs about as much as the
evaluation itself; the others are priced from the evaluation's own measurement."""

TRIAL_MODELS = tuple(name for name, info in ENERGY_MODELS.items() if info.every_trial)
"""The models every complete trial records."""


def check_energy_model(name: str) -> str:
    """Return `name` if it names an energy model.

    Raises:
        ValueError: naming the models allowed.
    """
    if name not in ENERGY_MODELS:
        raise ValueError(f"unknown energy model {name!r}; choose from {list(ENERGY_MODELS)}")
    return name


def lemaire_attention_pj() -> float:
    """Lemaire's price of one synaptic accumulate (a 32-bit add), charged per attention-product SOP."""
    from spikingjelly.activation_based.op_counter import LemaireEnergyCostConfig

    return LemaireEnergyCostConfig().e_add_pj


LEMAIRE_COMPONENTS = ("ops", "addressing", "inout", "params", "potential", "attention")
"""Rows of a ``lemaire`` report (kind ``COMPONENT``): the profiler's breakdown (operations, address
arithmetic, SRAM accesses of inputs/outputs, of weights, of membrane potentials) and the
attention products, priced by our rule."""


@torch.no_grad()
def lemaire_energy(model: nn.Module, images: Iterable[torch.Tensor], *, params: int | None = None) -> EnergyReport:
    """Energy per image of a standalone network under Lemaire et al.'s model.

    spikingjelly's `LemaireEnergyProfiler` counts every Linear/Conv layer and LIF neuron,
    one image per forward pass (its buffers are sized by the tensors it sees, so a batch
    would price a bigger chip); `monitor.EnergyMonitor` measures the attention products'
    SOPs in the same passes, charged at Lemaire's 32-bit add. Pass a standalone network
    (`models.extract_subnet`): on a supernet the profiler would read full-size layers.

    Args:
        model: The network, in eval mode.
        images: Single images ``[C, H, W]`` (or event frames ``[F, C, H, W]``) on the model's device.
        params: Parameter count to carry in the report.

    Returns:
        An `EnergyReport` with ``model="lemaire"``, one row per `LEMAIRE_COMPONENTS` (kind
        ``COMPONENT``); its ``sops`` and ``firing_rate`` are those of the images priced.

    Raises:
        ValueError: for no images.
    """
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, LemaireEnergyProfiler

    from .monitor import EnergyMonitor

    profiler = LemaireEnergyProfiler(config=LemaireEnergyConfig(strict=False))
    profiler.bind_model(model)
    count = 0
    with warnings.catch_warnings(), EnergyMonitor(model) as monitor:
        # BatchNorm, max pooling and the attention product have no Lemaire formula (see above).
        warnings.filterwarnings("ignore", message="Lemaire formulas do not support", category=RuntimeWarning)
        with profiler:
            for image in images:
                model(image.unsqueeze(0))
                functional.reset_net(model)
                count += 1
    if not count:
        raise ValueError("lemaire_energy needs at least one image")
    lemaire = profiler.get_report()
    measured = monitor.report(params=params)
    ops = measured.layers
    attention_sops = float(ops.loc[ops["layer"].str.endswith((".qk", ".av")), "ops"].sum())
    energy = [lemaire.breakdown_pj[f"{name}_pj"] * PJ_TO_MJ / count for name in LEMAIRE_COMPONENTS[:-1]]
    energy.append(attention_sops * lemaire_attention_pj() * PJ_TO_MJ)
    nan = float("nan")
    layers = pd.DataFrame({"layer": list(LEMAIRE_COMPONENTS), "kind": "COMPONENT", "dense_macs": nan,
                           "input_rate": nan, "ops": nan, "energy_mj": energy})
    report = assemble_report(layers, measured.profile, time_steps=measured.time_steps,
                             firing_rate=measured.firing_rate, params=params, images=count, model="lemaire")
    return dataclasses.replace(report, sops=measured.sops, macs=measured.macs)
