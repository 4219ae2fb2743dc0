"""Dense operation counts of a Spikformer subnet, without running it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from models import SubnetConfig, SupernetConfig

from .profiles import EnergyProfile, get_profile
from .report import EnergyReport, build_report, check_first_layer


@dataclass(frozen=True)
class DenseMACs:
    """Dense MACs of each synaptic layer for one image.

    ``MAC`` layers (the first conv on a static image, the head on averaged features) are
    counted per image: the first conv once, or T times under the ``per_step`` first-layer
    convention. ``AC`` layers run once per time step and the counts are per step; on event
    frames the first conv is one of them.
    """

    layers: pd.DataFrame
    time_steps: int
    first_layer: str = "once"

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


def _layer_macs(supernet_cfg: SupernetConfig, config: SubnetConfig,
                first_layer: str = "once") -> list[tuple[str, str, int]]:
    """``(layer, kind, dense MACs)`` of each synaptic layer of the active `config`."""
    check_first_layer(first_layer)
    d = config.embed_dim
    dims = (supernet_cfg.in_channels, *supernet_cfg.stem_dims, d)
    side = supernet_cfg.img_size
    pooled_from = 4 - supernet_cfg.num_pools
    rows: list[tuple[str, str, int]] = []
    for stage in range(4):
        macs = side * side * dims[stage] * dims[stage + 1] * 9
        kind = "AC" if stage or supernet_cfg.event_input else "MAC"
        if kind == "MAC" and first_layer == "per_step":
            macs *= config.time_steps
        rows.append((f"sps.proj_convs.{stage}", kind, macs))
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


def neuron_count(supernet_cfg: SupernetConfig, config: SubnetConfig) -> int:
    """Spiking neurons of the active `config` that update at every step, for one image: one per
    output element of each stem conv, the position conv, Q/K/V, the attention product, the
    projection and both MLP layers."""
    config = config.active()
    d = config.embed_dim
    dims = (*supernet_cfg.stem_dims, d)
    side = supernet_cfg.img_size
    pooled_from = 4 - supernet_cfg.num_pools
    neurons = 0
    for stage in range(4):
        neurons += side * side * dims[stage]
        if stage >= pooled_from:
            side = _pooled(side)
    n = side * side
    neurons += n * d  # position conv
    for i in range(config.depth):
        neurons += n * (3 * d + d + d + config.mlp_hidden(i) + d)
    return neurons


def dense_macs(supernet_cfg: SupernetConfig, config: SubnetConfig, *, first_layer: str = "once") -> DenseMACs:
    """Count the dense MACs of `config` layer by layer.

    Layer names are the module names of `models.Spikformer`, with ``.qk`` and ``.av`` for
    the two attention products. `first_layer` (``once`` or ``per_step``) is the convention
    for the first conv of a static-image model.
    """
    config = config.active()
    frame = pd.DataFrame(_layer_macs(supernet_cfg, config, first_layer), columns=["layer", "kind", "dense_macs"])
    return DenseMACs(layers=frame, time_steps=config.time_steps, first_layer=first_layer)


def analytic_energy(
    supernet_cfg: SupernetConfig,
    *,
    firing_rate: float = 1.0,
    profile: str | EnergyProfile | None = None,
    first_layer: str = "once",
    model: str = "ops",
) -> Callable[[SubnetConfig], float]:
    """Energy per image (mJ) of any subnet of `supernet_cfg` from its dense counts alone.

    A cost that ranks subnets before any is run (a sampler's first generation): every
    spike-driven layer is charged as if it saw `firing_rate`, and under a device model
    (`energy.DEVICES`) every neuron fires at `firing_rate` too. ``lemaire`` has no such
    estimate (its memory prices follow buffer sizes that only a run shows): it gets the
    ``ops`` one. The function is a `functools.partial` of a module-level function, so it
    pickles with whatever holds it.

    Args:
        supernet_cfg: The supernet the subnets live in.
        firing_rate: Input spike rate assumed for every spike-driven layer.
        profile: Energy per operation (see `get_profile`).
        first_layer: First-layer convention, ``once`` or ``per_step``.
        model: Energy model (`energy.ENERGY_MODELS`).

    Returns:
        A function of a `SubnetConfig` giving mJ per image.
    """
    from .models import DEVICES, check_energy_model

    check_first_layer(first_layer)
    check_energy_model(model)
    if model in DEVICES:
        return functools.partial(_device_energy_mj, supernet_cfg, firing_rate=firing_rate, device=model,
                                 first_layer=first_layer)
    return functools.partial(_dense_energy_mj, supernet_cfg, firing_rate=firing_rate, profile=profile,
                             first_layer=first_layer)


def _device_energy_mj(supernet_cfg: SupernetConfig, config: SubnetConfig, *, firing_rate: float, device: str,
                      first_layer: str = "once") -> float:
    from .models import DEVICES

    config = config.active()
    costs = DEVICES[device]
    events = 0.0
    for _, kind, macs in _layer_macs(supernet_cfg, config, first_layer):
        events += macs if kind == "MAC" else firing_rate * config.time_steps * macs
    updates = config.time_steps * neuron_count(supernet_cfg, config)
    return float(costs.energy_pj(events, updates, firing_rate * updates)) * 1e-9


def _dense_energy_mj(supernet_cfg: SupernetConfig, config: SubnetConfig, *, firing_rate: float,
                     profile: str | EnergyProfile | None, first_layer: str = "once") -> float:
    # `DenseMACs.energy_mj` without the DataFrame: a sampler calls this for every child it draws.
    config = config.active()
    p = get_profile(profile)
    mac = ac = 0
    for _, kind, macs in _layer_macs(supernet_cfg, config, first_layer):
        if kind == "MAC":
            mac += macs
        else:
            ac += macs
    return float(p.e_mac_pj * mac + p.e_ac_pj * firing_rate * config.time_steps * ac) * 1e-9


def ann_energy(
    supernet_cfg: SupernetConfig,
    *,
    profile: str | EnergyProfile | None = None,
) -> Callable[[SubnetConfig], float]:
    """Energy per image (mJ) of the same network run as an ANN: ``E_MAC x dense MACs``.

    The comparison the Spikformer papers draw: every synaptic layer, the attention products
    included, computes once on real values at `profile`'s E_MAC (4.6 pJ in fp32). An ANN has
    no time steps, so its first layer counts once whatever first-layer convention the spiking
    figures follow. The function is a `functools.partial` of a module-level function, so it
    pickles with whatever holds it.

    Args:
        supernet_cfg: The supernet the subnets live in.
        profile: Energy per operation (see `get_profile`); only its E_MAC is used.

    Returns:
        A function of a `SubnetConfig` giving mJ per image.
    """
    return functools.partial(_ann_energy_mj, supernet_cfg, profile=profile)


def _ann_energy_mj(supernet_cfg: SupernetConfig, config: SubnetConfig, *,
                   profile: str | EnergyProfile | None) -> float:
    macs = sum(m for _, _, m in _layer_macs(supernet_cfg, config.active(), "once"))
    return float(get_profile(profile).e_mac_pj * macs) * 1e-9


def appendix_energy(
    dense: DenseMACs,
    firing_rates: Mapping[str, float] | float,
    *,
    profile: str | EnergyProfile | None = None,
    count_head: bool = True,
) -> EnergyReport:
    """The Spikformer appendix's energy arithmetic, from dense counts and input firing rates.

    ``E = E_MAC x MACs(first conv) + E_AC x sum_l fr(l) x T x MACs(l)`` over the spike-driven
    layers l, where fr(l) is the mean spike count per input element per step of layer l.
    The first conv counts as `dense` counts it: build `dense` with
    ``dense_macs(..., first_layer="per_step")`` for the published tables, which charge it at
    every step. The appendix's formula has no term for the head (its MACs on averaged
    features are a few thousandths of a mJ on ImageNet); ``count_head=False`` leaves it out.

    Args:
        dense: Per-layer dense MACs (`dense_macs`).
        firing_rates: One rate for every spike-driven layer, or a rate per layer name; every
            spike-driven layer of `dense` needs one.
        profile: Energy per operation (default ``fp32``: 4.6 / 0.9 pJ).
        count_head: Charge the head's MACs.

    Returns:
        The energy per image, with a per-layer table (`EnergyReport.layers`).

    Raises:
        ValueError: for a spike-driven layer without a rate, or a rate naming no layer.
    """
    rows = []
    layers = dense.layers if count_head else dense.layers[dense.layers["layer"] != "head"]
    ac_layers = set(layers.loc[layers["kind"] == "AC", "layer"])
    if not isinstance(firing_rates, (int, float)):
        missing = sorted(ac_layers - set(firing_rates))
        unknown = sorted(set(firing_rates) - ac_layers)
        if missing or unknown:
            raise ValueError(f"firing rates: spike-driven layers without a rate {missing}, rates for no spike-driven "
                             f"layer {unknown}")
    for layer, kind, macs in layers.itertuples(index=False):
        if kind == "MAC":
            rows.append((layer, kind, float(macs), float("nan"), float(macs)))
        else:
            rate = float(firing_rates if isinstance(firing_rates, (int, float)) else firing_rates[layer])
            rows.append((layer, kind, float(macs), rate, rate * dense.time_steps * macs))
    return build_report(rows, get_profile(profile), time_steps=dense.time_steps, firing_rate=float("nan"),
                        params=None, images=1, first_layer=dense.first_layer)
