"""What a forward pass of a spiking network costs: firing rates, operations, pJ -> mJ.

Reads `models` (for the attention product and analytic counts); never imports `nas`.
Names load on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "analytic": ["DenseMACs", "analytic_energy", "ann_energy", "appendix_energy", "dense_macs", "neuron_count"],
    "models": ["DEVICES", "ENERGY_MODELS", "TRIAL_MODELS", "DeviceCosts", "check_energy_model", "lemaire_energy"],
    "monitor": ["EnergyMonitor", "measure_energy"],
    "profiles": ["PRESETS", "EnergyProfile", "get_profile"],
    "report": ["FIRST_LAYER_CONVENTIONS", "EnergyReport", "check_first_layer"],
})
