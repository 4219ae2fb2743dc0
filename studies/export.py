"""Export one subnet of a study as a standalone model with its test-split metrics; fine-tune it.

``export_trial`` writes the folder that `models.load_exported` reads (``subnet.pt`` and
``subnet.json``, format in `models.exported`): the subnet's config and weights, the input
transform of its data set (`models.InputTransform`: raw pixels or event counts in, model
input out), the study and trial it came from, and what was measured on the test split.

The weights are the supernet's, cut to the subnet, with BN statistics recalibrated on the
training images for this subnet (as during the search) before extraction. The test split
is touched here and nowhere in the search, and always scored whole: a study's
``eval_images`` subset and early rejection apply to the validation split of the search only.

``finetune_trial`` trains the extracted subnet on from those weights (`nas.train.finetune_subnet`,
the supernet's recipe made into a fine-tuning one by `nas.recipes.finetune_recipe`), then
writes the same folder for the fine-tuned weights, recording the fine-tuning and the
inherited weights' scores. Its checkpoint (``finetune.pt``) and per-epoch metrics
(``finetune.metrics.csv``) stay in the folder, so ``resume=True`` continues after a crash.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial
from torch.utils.data import DataLoader, Dataset

from energy import EnergyReport, lemaire_energy
from models import Spikformer, SubnetConfig, count_params, extract_subnet
from models.exported import CONFIG_FILE, WEIGHTS_FILE, export_description, export_state
from nas import atomic_write, score_energies
from nas.data import DataSplits

from .builders import load_evaluator
from .results import select_trial
from .settings import StudySettings

FINETUNE_CHECKPOINT = "finetune.pt"
"""The fine-tuning checkpoint `finetune_trial` keeps in its folder (metrics: ``finetune.metrics.csv``)."""


@dataclass(frozen=True)
class _Inherited:
    """A trial's subnet with the supernet's weights, and the data it is scored on."""

    trial: FrozenTrial
    config: SubnetConfig
    model: Spikformer
    val_accuracy: float
    val_split: Dataset
    data: DataSplits


def _inherited(study: optuna.Study, settings: StudySettings, trial: str | int, device: str | None) -> _Inherited:
    chosen = select_trial(study, settings, trial)
    config = settings.space.config_from_params(chosen.params).active()
    evaluator, data = load_evaluator(settings, device=device)
    # The evaluator leaves the supernet's BN statistics recalibrated for `config`: extract after it.
    val = evaluator(config)
    model = extract_subnet(evaluator.net, config).eval()
    return _Inherited(trial=chosen, config=config, model=model, val_accuracy=val.accuracy,
                      val_split=evaluator.scored_split, data=data)


def _score(model: Spikformer, split: Dataset, settings: StudySettings) -> tuple[float, dict[str, EnergyReport]]:
    """Accuracy on `split` and the energy under every model the study records (``lemaire`` on
    the first `energy_images` images of `split`, one at a time)."""
    ev = settings.evaluation
    params = count_params(model.supernet_cfg, model.config)
    trace = tuple(m for m in ev.energy_models if m != "lemaire")
    accuracy, reports = score_energies(model, DataLoader(split, batch_size=ev.batch_size, shuffle=False),
                                       params=params, profile=ev.profile, first_layer=ev.first_layer, models=trace)
    if "lemaire" in ev.energy_models:
        device = next(model.parameters()).device
        images = (split[i][0].to(device) for i in range(min(ev.energy_images, len(split))))
        reports["lemaire"] = lemaire_energy(model, images, params=params)
    return accuracy, reports


def _write_export(study: optuna.Study, settings: StudySettings, out_dir: str | Path, inherited: _Inherited,
                  model: Spikformer, *, val_accuracy: float, finetune: dict[str, Any] | None) -> dict[str, Any]:
    """Score `model` on the test split, write the export folder, and return what it records."""
    chosen, ev = inherited.trial, settings.evaluation
    test_accuracy, reports = _score(model, inherited.data.test, settings)
    report, measured = reports[ev.energy_model], reports.get("ops", reports[ev.energy_model])
    search = {key: chosen.user_attrs.get(key)
              for key in ("accuracy", "energy_mj", "energies_mj", "f_aeb", "sops", "firing_rate")}
    info: dict[str, Any] = {
        "study": study.study_name,
        "trial": chosen.number,
        "arch_id": inherited.config.arch_id,
        "config": inherited.config.to_dict(),
        "params": count_params(model.supernet_cfg, inherited.config),
        "search": search,
        "val_accuracy": val_accuracy,
        "val_images": len(inherited.val_split),
        "test_accuracy": test_accuracy,
        "test_images": measured.images,
        "test_energy_mj": report.energy_mj,
        "test_energies_mj": {model: r.energy_mj for model, r in reports.items()},
        "test_sops": measured.sops,
        "test_firing_rate": measured.firing_rate,
        "energy_model": ev.energy_model,
        "energy_profile": ev.profile,
        "energy_first_layer": ev.first_layer,
        "dataset": settings.dataset.to_dict(),
        "data_fingerprint": settings.data_fingerprint,
        "supernet_checkpoint": settings.checkpoint,
        "finetune": finetune,
    }
    transform = inherited.data.input_transform(inherited.config.time_steps)
    state = export_state(model, transform, info)
    out = Path(out_dir)
    weights, description = out / WEIGHTS_FILE, out / CONFIG_FILE
    atomic_write(weights, functools.partial(torch.save, state))
    text = export_description(state)
    atomic_write(description, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return {**info, "transform": transform.describe(), "files": {"config": str(description), "weights": str(weights)}}


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
        What ``subnet.json`` records: ``study``, ``trial``, ``arch_id``, ``config`` (active
        genes), ``params``, ``search`` (the metrics the search recorded on the validation
        split), ``val_accuracy`` (measured again here on the search's ``val_images`` images;
        equals the search's), ``test_accuracy`` in [0, 1], ``test_energy_mj``, ``test_sops``,
        ``test_firing_rate`` (measured on the extracted model, on all ``test_images`` images
        of the test split), ``test_energies_mj`` (the test energy under every energy model
        the study records; ``test_energy_mj`` is that of ``energy_model``, the study's),
        ``energy_model``, ``energy_profile``, ``energy_first_layer`` (the first-layer
        convention), ``dataset``, ``data_fingerprint``, ``supernet_checkpoint`` and
        ``finetune`` (None: inherited weights); plus ``transform`` (what the model reads, in
        words) and ``files`` (the two paths).

    Raises:
        StudyError: for a study without complete trials, an unknown trial number or a
            trial that is not complete.
        ConfigError: for a `trial` that is neither a name nor a number.
    """
    inherited = _inherited(study, settings, trial, device)
    return _write_export(study, settings, out_dir, inherited, inherited.model, val_accuracy=inherited.val_accuracy,
                         finetune=None)


def finetune_trial(
    study: optuna.Study,
    settings: StudySettings,
    out_dir: str | Path,
    *,
    trial: str | int = "best",
    epochs: int | None = None,
    lr: float | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str | None = None,
    precision: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a trial's subnet from its inherited weights, then export it as `export_trial` does.

    The recipe is the supernet checkpoint's, made into a fine-tuning one
    (`nas.recipes.finetune_recipe`: a tenth of its peak learning rate, no warmup, one
    network per step). The folder holds the export (``subnet.pt``, ``subnet.json``), the
    fine-tuning checkpoint ``finetune.pt`` and its metrics ``finetune.metrics.csv``.

    Args:
        study: An autospk study.
        settings: Its stored settings.
        out_dir: The folder (created if missing).
        trial: ``"best"``, ``"knee"`` or a trial number (see `export_trial`).
        epochs: Fine-tuning epochs (None: a tenth of the supernet recipe's, at least 1).
        lr: Peak learning rate (None: a tenth of the supernet recipe's).
        resume: Continue from the folder's ``finetune.pt`` if there is one (it must be of the
            same study, trial, recipe and data).
        seed: Seed of data order and augmentation.
        device: Where to run (default: cuda if available, else cpu).
        precision: ``fp32``, ``bf16`` or ``fp16`` training (None: bf16 on a GPU that supports it, else fp32).
        progress: Show progress.

    Returns:
        What ``subnet.json`` records (see `export_trial`), with ``finetune``: ``epochs``,
        ``lr``, ``seed``, ``precision``, ``recipe`` (all of it), ``checkpoint`` and
        ``inherited`` (``val_accuracy``, ``test_accuracy`` and ``test_energy_mj`` of the
        subnet before fine-tuning).

    Raises:
        StudyError: as `export_trial`.
        ConfigError: for a `trial` that is neither a name nor a number, or a ``finetune.pt``
            in `out_dir` of another subnet, recipe or data (with `resume`).
    """
    from nas import default_device, finetune_recipe, load_checkpoint
    from nas.precision import check_precision
    from nas.train import finetune_subnet

    inherited = _inherited(study, settings, trial, device)
    before_accuracy, before = _score(inherited.model, inherited.data.test, settings)
    recipe = finetune_recipe(load_checkpoint(settings.checkpoint).recipe, epochs=epochs, lr=lr)
    precision = check_precision(precision, default_device(device))
    checkpoint = Path(out_dir) / FINETUNE_CHECKPOINT
    origin = {"study": study.study_name, "trial": inherited.trial.number, "supernet_checkpoint": settings.checkpoint}
    model = finetune_subnet(inherited.model, inherited.data, recipe, checkpoint, origin=origin, resume=resume,
                            seed=seed, device=device, progress=progress, val=inherited.val_split, precision=precision,
                            evaluation=settings.evaluation)
    val_accuracy, _ = _score(model, inherited.val_split, settings)
    finetune = {
        "epochs": recipe.epochs,
        "lr": recipe.lr,
        "seed": seed,
        "precision": precision,
        "recipe": recipe.to_dict(),
        "checkpoint": str(checkpoint),
        "inherited": {"val_accuracy": inherited.val_accuracy, "test_accuracy": before_accuracy,
                      "test_energy_mj": before[settings.evaluation.energy_model].energy_mj},
    }
    return _write_export(study, settings, out_dir, inherited, model, val_accuracy=val_accuracy, finetune=finetune)
