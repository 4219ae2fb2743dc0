"""Exported subnets: the file format, and the one call that loads a subnet ready to run.

``autospk-study export`` (and ``finetune``) write a folder with two files:

- ``subnet.pt``, loadable with ``torch.load(weights_only=True)`` (tensors and plain containers
  only), a dict with
  ``format`` (2), ``supernet`` (`SupernetConfig` dict: data shape, stem widths, neuron scope),
  ``config`` (`SubnetConfig` dict: the active genes), ``model`` (the state dict of a
  `Spikformer` built from those two), ``transform`` (`InputTransform` dict: what raw data the
  model reads, and how it is scaled and normalised) and ``info`` (study and trial, metrics
  measured on the test split, the energy profile and first-layer convention, how the weights
  were made: inherited from the supernet, or fine-tuned);
- ``subnet.json``: the same ``info``, ``supernet``, ``config`` and ``transform``, for people.

`load_exported` reads ``subnet.pt`` alone: the file carries everything needed to run the
subnet anywhere. Format 1 (no transform, no info) still loads; its transform refuses to run
and asks for a new export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import SubnetConfig, SupernetConfig
from .errors import ConfigError
from .spikformer import Spikformer
from .transform import InputTransform

EXPORT_FORMAT = 2
WEIGHTS_FILE = "subnet.pt"
CONFIG_FILE = "subnet.json"
_READABLE_FORMATS = (1, 2)


class _UnknownTransform:
    """The transform of a format-1 export, which did not record it: calling it explains."""

    def __call__(self, raw: Any) -> torch.Tensor:
        raise ConfigError("this subnet was exported in format 1, which does not record its input transform; export the "
                          "trial again with `autospk-study export` (format 2) to get it")

    def describe(self) -> str:
        return "unknown (format-1 export)"


@dataclass(frozen=True)
class ExportedSubnet:
    """An exported subnet, ready to run.

    Attributes:
        model: The standalone `Spikformer`, in eval mode.
        transform: Raw sample -> model input of one sample (`InputTransform`).
        info: What the export recorded: ``study``, ``trial``, ``config``, ``params``,
            ``test_accuracy`` (a fraction in [0, 1]), ``test_energy_mj`` (mJ per image),
            ``energy_profile``, ``energy_first_layer``, ``dataset``, ``finetune`` (None for
            inherited weights) and more (see `studies.export.export_trial`).
    """

    model: Spikformer
    transform: InputTransform | _UnknownTransform
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Class names, index = predicted label (the label numbers where the data set names none)."""
        names = getattr(self.transform, "classes", None)
        return list(names) if names else [str(i) for i in range(self.model.supernet_cfg.num_classes)]


def export_state(model: Spikformer, transform: InputTransform, info: dict[str, Any]) -> dict[str, Any]:
    """The dict ``subnet.pt`` holds (see the module doc); tensors moved to the CPU."""
    return {
        "format": EXPORT_FORMAT,
        "supernet": model.supernet_cfg.to_dict(),
        "config": model.config.to_dict(),
        "model": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "transform": transform.to_dict(),
        "info": info,
    }


def export_description(state: dict[str, Any]) -> str:
    """The text of ``subnet.json`` for the `export_state` dict `state`."""
    described = {**state["info"], "format": state["format"], "supernet": state["supernet"], "config": state["config"],
                 "transform": state["transform"], "weights": WEIGHTS_FILE}
    return json.dumps(described, indent=1) + "\n"


def load_exported(path: str | Path, *, device: str | torch.device = "cpu") -> ExportedSubnet:
    """Load an exported subnet: the model in eval mode, its input transform and what was measured.

    Example::

        subnet = load_exported("digits-knee")
        logits = subnet.model(subnet.transform(image).unsqueeze(0))
        print(subnet.classes[logits.argmax(1).item()])

    Args:
        path: The folder ``autospk-study export`` wrote, or its ``subnet.pt``.
        device: Where to put the model.

    Raises:
        FileNotFoundError: if there is no exported subnet at `path`.
        ConfigError: if the file is not an autospk subnet export.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"subnet export {path} does not exist; write one with `autospk-study export`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ConfigError(f"{path} is corrupt or not a subnet export ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") not in _READABLE_FORMATS or "config" not in state:
        raise ConfigError(f"{path} is not an autospk subnet export (format {EXPORT_FORMAT}); "
                          "a supernet checkpoint is loaded with nas.load_checkpoint")
    # The fresh weights are overwritten at once: drawing them must not move the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        model = Spikformer(SupernetConfig.from_dict(state["supernet"]), SubnetConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    if state["format"] == 1:
        return ExportedSubnet(model, _UnknownTransform(), _format1_info(path))
    return ExportedSubnet(model, InputTransform.from_dict(state["transform"]), dict(state["info"]))


def _format1_info(weights: Path) -> dict[str, Any]:
    """What a format-1 export recorded: its ``subnet.json``, if it is still beside the weights."""
    description = weights.with_name(CONFIG_FILE)
    if not description.is_file():
        return {}
    return json.loads(description.read_text(encoding="utf-8"))
