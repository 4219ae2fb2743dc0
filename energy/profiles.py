"""Energy per operation: the 45 nm presets (Horowitz, ISSCC 2014) and user values.

The presets are spikingjelly's `op_counter.SimpleEnergyCostConfig`; memory energy is not
part of the Spikformer energy model and is ignored here.
"""

from __future__ import annotations

from spikingjelly.activation_based.op_counter import SimpleEnergyCostConfig

from models import ConfigError

EnergyProfile = SimpleEnergyCostConfig
"""Per-operation energies: ``e_mac_pj`` (multiply-accumulate) and ``e_ac_pj`` (accumulate)."""

PRESETS = {
    "fp32": SimpleEnergyCostConfig.fp32,
    "fp16": SimpleEnergyCostConfig.fp16,
    "int8": SimpleEnergyCostConfig.int8,
}
"""Named profiles; ``fp32`` (4.6 / 0.9 pJ) is the default of the Spikformer papers."""


def get_profile(profile: str | EnergyProfile | None = None) -> EnergyProfile:
    """Resolve a preset name, an `EnergyProfile` or None (fp32).

    Args:
        profile: ``"fp32"``, ``"fp16"``, ``"int8"``, ``"MAC,AC"`` in pJ (e.g. ``"3.1,0.1"``),
            an `EnergyProfile`, or None.

    Raises:
        ConfigError: for an unknown name.
    """
    if profile is None:
        return SimpleEnergyCostConfig.fp32()
    if isinstance(profile, SimpleEnergyCostConfig):
        return profile
    if profile in PRESETS:
        return PRESETS[profile]()
    parts = str(profile).split(",")
    try:
        e_mac, e_ac = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"unknown energy profile {profile!r}; choose from {sorted(PRESETS)} or give "
            "'E_MAC,E_AC' in pJ, e.g. '4.6,0.9'"
        ) from None
    return SimpleEnergyCostConfig(e_mac_pj=e_mac, e_ac_pj=e_ac)
