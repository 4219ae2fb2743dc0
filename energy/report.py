"""The energy of a forward pass: totals and a per-layer breakdown."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .profiles import EnergyProfile

PJ_TO_MJ = 1e-9


@dataclass(frozen=True)
class EnergyReport:
    """Energy per image, after the Spikformer appendix.

    ``E = E_MAC * MACs + E_AC * SOPs``, where MACs are the dense operations of layers that
    see real values (the first conv, once per image; the head) and SOPs the synaptic
    operations of spike-driven layers (input rate x T x dense MACs).

    Attributes:
        energy_mj: Energy per image in millijoules.
        macs: MAC operations per image (real-valued layers).
        sops: Synaptic operations per image (spike-driven layers, all time steps).
        firing_rate: Mean firing rate of all spiking neurons (spikes per neuron per step).
        params: Parameter count of the measured network, when known.
        time_steps: T.
        layers: One row per synaptic layer: layer, kind (MAC/AC), dense_macs (per image,
            per time step for AC layers), input_rate, ops (MACs or SOPs per image),
            energy_mj and energy_share.
        profile: The per-operation energies used.
        images: How many images were measured.
    """

    energy_mj: float
    macs: float
    sops: float
    firing_rate: float
    params: int | None
    time_steps: int
    layers: pd.DataFrame
    profile: EnergyProfile
    images: int

    def summary(self) -> dict[str, float | int | None]:
        """The scalar figures, e.g. for an Optuna trial's user attrs."""
        return {
            "energy_mj": self.energy_mj,
            "macs": self.macs,
            "sops": self.sops,
            "firing_rate": self.firing_rate,
            "params": self.params,
            "time_steps": self.time_steps,
        }


def build_report(
    rows: list[tuple[str, str, float, float, float]],
    profile: EnergyProfile,
    *,
    time_steps: int,
    firing_rate: float,
    params: int | None,
    images: int,
) -> EnergyReport:
    """Assemble an `EnergyReport` from per-layer (layer, kind, dense_macs, rate, ops) rows."""
    layers = pd.DataFrame(rows, columns=["layer", "kind", "dense_macs", "input_rate", "ops"])
    cost = layers["kind"].map({"MAC": profile.e_mac_pj, "AC": profile.e_ac_pj})
    layers["energy_mj"] = layers["ops"] * cost * PJ_TO_MJ
    total = float(layers["energy_mj"].sum())
    layers["energy_share"] = layers["energy_mj"] / total if total > 0 else 0.0
    is_mac = layers["kind"] == "MAC"
    return EnergyReport(
        energy_mj=total,
        macs=float(layers.loc[is_mac, "ops"].sum()),
        sops=float(layers.loc[~is_mac, "ops"].sum()),
        firing_rate=firing_rate,
        params=params,
        time_steps=time_steps,
        layers=layers,
        profile=profile,
        images=images,
    )
