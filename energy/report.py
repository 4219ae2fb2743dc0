"""The energy of a forward pass: totals and a per-layer breakdown."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .profiles import EnergyProfile

PJ_TO_MJ = 1e-9

FIRST_LAYER_CONVENTIONS = ("once", "per_step")
"""How the first layer of a static-image model is charged. ``once``: as it is computed here,
once per image (its output is reused at every step). ``per_step``: at every one of the T
steps, as the published Spikformer tables count it (the appendix's 0.347 G first-layer MACs
of 8-512 at 224x224 and T=4 are 4 x 86.7 M). On event frames the first layer runs at every
step under either convention."""


def check_first_layer(convention: str) -> str:
    """Return `convention` if it is one of `FIRST_LAYER_CONVENTIONS`.

    Raises:
        ValueError: naming the conventions allowed.
    """
    if convention not in FIRST_LAYER_CONVENTIONS:
        raise ValueError(f"unknown first-layer convention {convention!r}; choose from {list(FIRST_LAYER_CONVENTIONS)}")
    return convention


@dataclass(frozen=True)
class EnergyReport:
    """Energy per image, after the Spikformer appendix.

    ``E = E_MAC * MACs + E_AC * SOPs``, where MACs are the dense operations of layers that
    see real values (the first conv on a static image, once per image or at every step as
    `first_layer` says; the head) and SOPs the synaptic operations of spike-driven layers
    (input rate x T x dense MACs; on event frames the first conv is one of them).

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
        first_layer: The first-layer convention the figures follow (`FIRST_LAYER_CONVENTIONS`).
        model: The energy model that priced it (`energy.ENERGY_MODELS`): ``ops`` charges
            `profile`; a device model (``loihi``, ``spinnaker2``) charges each synaptic
            layer's events (``ops``) per synaptic event and has a row of kind ``NEURON`` per
            neuron layer (``dense_macs``: neurons per step, ``input_rate``: its output
            spikes per update, ``ops``: neuron updates per image).
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
    first_layer: str = "once"
    model: str = "ops"

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
    first_layer: str = "once",
) -> EnergyReport:
    """Assemble an `EnergyReport` from per-layer (layer, kind, dense_macs, rate, ops) rows."""
    layers = pd.DataFrame(rows, columns=["layer", "kind", "dense_macs", "input_rate", "ops"])
    cost = layers["kind"].map({"MAC": profile.e_mac_pj, "AC": profile.e_ac_pj})
    layers["energy_mj"] = layers["ops"] * cost * PJ_TO_MJ
    return assemble_report(layers, profile, time_steps=time_steps, firing_rate=firing_rate, params=params,
                           images=images, first_layer=first_layer)


def assemble_report(
    layers: pd.DataFrame,
    profile: EnergyProfile,
    *,
    time_steps: int,
    firing_rate: float,
    params: int | None,
    images: int,
    first_layer: str = "once",
    model: str = "ops",
) -> EnergyReport:
    """An `EnergyReport` from a per-layer table that has its ``energy_mj`` column already."""
    layers = layers.copy()
    total = float(layers["energy_mj"].sum())
    layers["energy_share"] = layers["energy_mj"] / total if total > 0 else 0.0
    is_mac = layers["kind"] == "MAC"
    is_ac = layers["kind"] == "AC"
    return EnergyReport(
        energy_mj=total,
        macs=float(layers.loc[is_mac, "ops"].sum()),
        sops=float(layers.loc[is_ac, "ops"].sum()),
        firing_rate=firing_rate,
        params=params,
        time_steps=time_steps,
        layers=layers,
        profile=profile,
        images=images,
        first_layer=check_first_layer(first_layer),
        model=model,
    )
