"""What a forward pass of a spiking network costs: firing rates, operations, pJ -> mJ.

Reads `models` (for the attention product and analytic counts); never imports `nas`.
"""

from .analytic import DenseMACs, dense_macs
from .monitor import EnergyMonitor, measure_energy
from .profiles import PRESETS, EnergyProfile, get_profile
from .report import EnergyReport

__all__ = [
    "PRESETS",
    "DenseMACs",
    "EnergyMonitor",
    "EnergyProfile",
    "EnergyReport",
    "dense_macs",
    "get_profile",
    "measure_energy",
]
