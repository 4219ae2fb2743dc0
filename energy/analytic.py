"""Dense operation counts of a Spikformer subnet, without running it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from models import SubnetConfig, SupernetConfig

from .profiles import EnergyProfile, get_profile


@dataclass(frozen=True)
class DenseMACs:
    """Dense MACs of each synaptic layer for one image.

    ``MAC`` layers (the first conv on the static image, the head on averaged features)
    run once per image; ``AC`` layers run once per time step and the counts are per step.
    """

    layers: pd.DataFrame
    time_steps: int

    @property
    def total(self) -> int:
        """Sum of the per-layer counts (MAC layers once, AC layers for one step)."""
        return int(self.layers["dense_macs"].sum())

    def energy_mj(self, firing_rate: float = 1.0, profile: str | EnergyProfile | None = None) -> float:
        """Energy per image if every spike-driven layer saw `firing_rate`."""
        p = get_profile(profile)
        mac = self.layers.loc[self.layers["kind"] == "MAC", "dense_macs"].sum()
        ac = self.layers.loc[self.layers["kind"] == "AC", "dense_macs"].sum()
        return float(p.e_mac_pj * mac + p.e_ac_pj * firing_rate * self.time_steps * ac) * 1e-9


def _pooled(size: int) -> int:
    return (size + 1) // 2


def _layer_macs(supernet_cfg: SupernetConfig, config: SubnetConfig) -> list[tuple[str, str, int]]:
    """``(layer, kind, dense MACs)`` of each synaptic layer of the active `config`."""
    d = config.embed_dim
    dims = (supernet_cfg.in_channels, *supernet_cfg.stem_dims, d)
    side = supernet_cfg.img_size
    pooled_from = 4 - supernet_cfg.num_pools
    rows: list[tuple[str, str, int]] = []
    for stage in range(4):
        macs = side * side * dims[stage] * dims[stage + 1] * 9
        rows.append((f"sps.proj_convs.{stage}", "MAC" if stage == 0 else "AC", macs))
        if stage >= pooled_from:
            side = _pooled(side)
    n = side * side
    rows.append(("sps.rpe_conv", "AC", n * d * d * 9))
    for i in range(config.depth):
        h = config.mlp_hidden(i)
        prefix = f"blocks.{i}"
        for name in ("q_linear", "k_linear", "v_linear"):
            rows.append((f"{prefix}.attn.{name}", "AC", n * d * d))
        rows.append((f"{prefix}.attn.attn_product.qk", "AC", n * n * d))
        rows.append((f"{prefix}.attn.attn_product.av", "AC", n * n * d))
        rows.append((f"{prefix}.attn.proj_linear", "AC", n * d * d))
        rows.append((f"{prefix}.mlp.fc1_linear", "AC", n * d * h))
        rows.append((f"{prefix}.mlp.fc2_linear", "AC", n * h * d))
    rows.append(("head", "MAC", d * supernet_cfg.num_classes))
    return rows


def dense_macs(supernet_cfg: SupernetConfig, config: SubnetConfig) -> DenseMACs:
    """Count the dense MACs of `config` layer by layer.

    Layer names are the module names of `models.Spikformer`, with ``.qk`` and ``.av`` for
    the two attention products.
    """
    config = config.active()
    frame = pd.DataFrame(_layer_macs(supernet_cfg, config), columns=["layer", "kind", "dense_macs"])
    return DenseMACs(layers=frame, time_steps=config.time_steps)


def analytic_energy(
    supernet_cfg: SupernetConfig,
    *,
    firing_rate: float = 1.0,
    profile: str | EnergyProfile | None = None,
) -> Callable[[SubnetConfig], float]:
    """Energy per image (mJ) of any subnet of `supernet_cfg` from its dense counts alone.

    A cost that ranks subnets before any is run (a sampler's first generation): every
    spike-driven layer is charged as if it saw `firing_rate`. The function is a
    `functools.partial` of a module-level function, so it pickles with whatever holds it.

    Args:
        supernet_cfg: The supernet the subnets live in.
        firing_rate: Input spike rate assumed for every spike-driven layer.
        profile: Energy per operation (see `get_profile`).

    Returns:
        A function of a `SubnetConfig` giving mJ per image.
    """
    return functools.partial(_dense_energy_mj, supernet_cfg, firing_rate=firing_rate, profile=profile)


def _dense_energy_mj(supernet_cfg: SupernetConfig, config: SubnetConfig, *, firing_rate: float,
                     profile: str | EnergyProfile | None) -> float:
    # `DenseMACs.energy_mj` without the DataFrame: a sampler calls this for every child it draws.
    config = config.active()
    p = get_profile(profile)
    mac = ac = 0
    for _, kind, macs in _layer_macs(supernet_cfg, config):
        if kind == "MAC":
            mac += macs
        else:
            ac += macs
    return float(p.e_mac_pj * mac + p.e_ac_pj * firing_rate * config.time_steps * ac) * 1e-9
