"""Export one subnet of a study as a standalone model, with its test-split metrics.

``export_trial`` writes two files to a folder:

- ``subnet.json``: the study and trial, the subnet's `SubnetConfig` (active genes), the
  supernet settings, the metrics the search recorded (validation split) and the metrics
  measured on the test split;
- ``subnet.pt``: ``{"format": 1, "supernet": SupernetConfig dict, "config": SubnetConfig
  dict, "model": state_dict}``, tensors and plain containers only, so it loads with
  ``torch.load(weights_only=True)``; `load_exported` rebuilds the `models.Spikformer`.

The weights are the supernet's, cut to the subnet, with BN statistics recalibrated on the
training images for this subnet (as during the search) before extraction. The test split
is touched here and nowhere in the search, and always scored whole: a study's
``eval_images`` subset and early rejection apply to the validation split of the search only.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import optuna
import torch
from torch.utils.data import DataLoader

from models import ConfigError, Spikformer, SubnetConfig, SupernetConfig, count_params, extract_subnet
from nas import atomic_write, load_tensor_file, score_model

from .settings import StudySettings
from .study import load_evaluator, select_trial

EXPORT_FORMAT = 1
CONFIG_FILE = "subnet.json"
WEIGHTS_FILE = "subnet.pt"


def export_trial(
    study: optuna.Study,
    settings: StudySettings,
    out_dir: str | Path,
    *,
    trial: str | int = "best",
    device: str | None = None,
) -> dict[str, Any]:
    """Export a trial's subnet and measure it on the test split.

    Args:
        study: An autospk study.
        settings: Its stored settings (`studies.study.load`).
        out_dir: Folder for ``subnet.json`` and ``subnet.pt`` (created if missing).
        trial: ``"best"`` (highest feasible F_AEB), ``"knee"`` (of the Pareto front) or a
            trial number.
        device: Where to run (default: cuda if available, else cpu).

    Returns:
        ``study``, ``trial``, ``arch_id``, ``config`` (active genes), ``params``, ``search``
        (the metrics the search recorded on the validation split), ``val_accuracy`` (measured
        again here on the search's ``val_images`` images; equals the search's),
        ``test_accuracy`` in [0, 1], ``test_energy_mj``, ``test_sops``, ``test_firing_rate``
        (measured on the extracted model, on all ``test_images`` images of the test split),
        ``energy_profile``, ``energy_first_layer`` (the first-layer convention) and ``files``
        (the two paths).

    Raises:
        StudyError: for a study without complete trials, an unknown trial number or a
            trial that is not complete.
        ConfigError: for a `trial` that is neither a name nor a number.
    """
    chosen = select_trial(study, settings, trial)
    config = settings.space.config_from_params(chosen.params).active()
    evaluator, data = load_evaluator(settings, device=device)
    # The evaluator leaves the supernet's BN statistics recalibrated for `config`: extract after it.
    val = evaluator(config)
    model = extract_subnet(evaluator.net, config).eval()
    supernet_cfg: SupernetConfig = evaluator.net.supernet_cfg
    params = count_params(supernet_cfg, config)
    ev = settings.evaluation
    test_accuracy, report = score_model(model, DataLoader(data.test, batch_size=ev.batch_size, shuffle=False),
                                        params=params, profile=ev.profile, first_layer=ev.first_layer)

    out = Path(out_dir)
    weights, description = out / WEIGHTS_FILE, out / CONFIG_FILE
    atomic_write(weights, functools.partial(torch.save, {
        "format": EXPORT_FORMAT,
        "supernet": supernet_cfg.to_dict(),
        "config": config.to_dict(),
        "model": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }))
    search = {key: chosen.user_attrs.get(key) for key in ("accuracy", "energy_mj", "f_aeb", "sops", "firing_rate")}
    result: dict[str, Any] = {
        "study": study.study_name,
        "trial": chosen.number,
        "arch_id": config.arch_id,
        "config": config.to_dict(),
        "params": params,
        "search": search,
        "val_accuracy": val.accuracy,
        "val_images": val.images_scored,
        "test_accuracy": test_accuracy,
        "test_images": report.images,
        "test_energy_mj": report.energy_mj,
        "test_sops": report.sops,
        "test_firing_rate": report.firing_rate,
        "energy_profile": ev.profile,
        "energy_first_layer": ev.first_layer,
    }
    text = json.dumps({**result, "format": EXPORT_FORMAT, "supernet": supernet_cfg.to_dict(),
                       "dataset": settings.dataset.to_dict(), "weights": WEIGHTS_FILE}, indent=1) + "\n"
    atomic_write(description, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    result["files"] = {"config": str(description), "weights": str(weights)}
    return result


def load_exported(path: str | Path, *, device: str | torch.device = "cpu") -> Spikformer:
    """Rebuild an exported subnet as a standalone `models.Spikformer` in eval mode.

    Args:
        path: ``subnet.pt`` or the folder `export_trial` wrote.
        device: Where to put the model.

    Raises:
        FileNotFoundError: if there is no exported subnet at `path`.
        ConfigError: if the file is not an autospk subnet export.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    state = load_tensor_file(path, what="subnet export", hint="write one with `autospk-study export`")
    if not isinstance(state, dict) or state.get("format") != EXPORT_FORMAT or "config" not in state:
        raise ConfigError(f"{path} is not an autospk subnet export (format {EXPORT_FORMAT}); "
                         "a supernet checkpoint is loaded with nas.load_checkpoint")
    model = Spikformer(SupernetConfig.from_dict(state["supernet"]), SubnetConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()
