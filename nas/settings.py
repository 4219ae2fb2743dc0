"""Typed settings of a search: objectives, the sampler, the evaluation of a subnet, budgets.

Each default is written here once; the sampler, `studies.create`, the command line (which
builds its options and ``--help`` from these fields) and the quickstart all read it from
here. The module imports neither torch nor Optuna, so the command line starts fast.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from models import ConfigError

_Settings = TypeVar("_Settings")

OBJECTIVES = ("aeb", "pareto", "pareto3")
"""``aeb``: maximise F_AEB (one objective); ``pareto``: maximise accuracy, minimise energy;
``pareto3``: maximise accuracy, minimise energy and minimise parameters."""

OBJECTIVE_DESCRIPTIONS = {
    "aeb": "one objective: maximise F_AEB",
    "pareto": "two objectives: maximise accuracy, minimise energy",
    "pareto3": "three objectives: maximise accuracy, minimise energy, minimise parameters",
}
"""What each kind of study optimises, in words (command-line help, reports)."""

METRIC_NAMES = {"aeb": ["f_aeb"], "pareto": ["accuracy", "energy_mj"], "pareto3": ["accuracy", "energy_mj", "params"]}
"""The objective values a study of each kind reports, in order."""

DIRECTIONS = {"aeb": ["maximize"], "pareto": ["maximize", "minimize"],
              "pareto3": ["maximize", "minimize", "minimize"]}
"""Optuna directions of each kind of study."""


def settings_help(cls: type) -> dict[str, str]:
    """Each field's text in the ``Args:`` section of a settings dataclass's docstring, in one
    line, with its ``code`` quotes removed: the command line's help, written once.

    Raises:
        ValueError: for a dataclass field the docstring does not describe.
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    texts: dict[str, str] = {}
    name = None
    for line in lines[lines.index("Args:") + 1:] if "Args:" in lines else []:
        if not line.startswith("    "):
            break
        if line.startswith("        "):
            texts[name] += " " + line.strip()
        else:
            name, _, text = line.strip().partition(":")
            texts[name] = text.strip()
    missing = [f.name for f in fields(cls) if f.name not in texts]
    if missing:
        raise ValueError(f"{cls.__name__}'s docstring describes no {missing} under Args:")
    return {key: text.replace("``", "").replace("`", "") for key, text in texts.items()}


def settings_from_dict(cls: type[_Settings], data: dict[str, Any], where: str) -> _Settings:
    """Build a settings dataclass from a dict, naming unknown keys.

    Raises:
        ConfigError: for keys that `cls` does not have.
    """
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown settings {unknown}; allowed: {allowed}")
    return cls(**data)


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value} must be a probability in [0, 1]")


@dataclass(frozen=True)
class SamplerSettings:
    """Settings of `SpikformerNSGAIISampler` (Auto-Spikformer's evolution).

    Args:
        population_size: Trials per generation.
        num_parents: Parents kept per generation (top-k); None derives it from the
            population, ``max(2, population_size // 5)``: 10 of 50 as in AutoFormer.
        crossover_fraction: Share of children made by crossover (the rest by mutation).
        global_mutation_prob: Mutation probability of depth, embed_dim and T.
        block_mutation_prob: Mutation probability of each per-block gene.
        neighbour_mutation: Mutate ordered genes by one step instead of redrawing them.
        swap_prob: Per-gene probability of taking the second parent's gene in crossover.
        candidates: Children drawn per proposal once a generation has parents; a
            surrogate keeps the most promising (1 = plain NSGA-II).
        seed: Seed of every draw; with one worker the sampler is then deterministic.
    """

    population_size: int = 50
    num_parents: int | None = None
    crossover_fraction: float = 0.5
    global_mutation_prob: float = 0.4
    block_mutation_prob: float = 0.2
    neighbour_mutation: bool = False
    swap_prob: float = 0.5
    candidates: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population_size < 2:
            raise ConfigError(f"population_size={self.population_size} must be >= 2")
        if self.num_parents is None:
            object.__setattr__(self, "num_parents", max(2, self.population_size // 5))
        if not 2 <= self.num_parents <= self.population_size:
            raise ConfigError(
                f"num_parents={self.num_parents} must be in 2..population_size ({self.population_size})"
            )
        for name in ("crossover_fraction", "global_mutation_prob", "block_mutation_prob", "swap_prob"):
            _probability(name, getattr(self, name))
        if self.candidates < 1:
            raise ConfigError(f"candidates={self.candidates} must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIRST_LAYER_CONVENTIONS = ("once", "per_step")
"""Energy conventions for the first layer (`energy.FIRST_LAYER_CONVENTIONS`, repeated here so
that this module imports neither torch nor pandas; a test keeps the two equal)."""

ENERGY_MODEL_NAMES = ("ops", "lemaire", "loihi", "spinnaker2")
"""Energy models (`energy.ENERGY_MODELS`, repeated here for the same reason; a test keeps them equal)."""

ON_REQUEST_MODELS = ("lemaire",)
"""Energy models recorded only when a study asks (`energy.ENERGY_MODELS`: ``every_trial`` False)."""

PRECISIONS = ("fp32", "bf16", "fp16")
"""Numeric precisions of training and evaluation (see `nas.precision`)."""


@dataclass(frozen=True)
class EvaluationSettings:
    """How a subnet is scored with inherited weights.

    Early rejection stops scoring a subnet as soon as bounds on its full-split accuracy
    and energy show that it cannot matter: for ``pareto``, a feasible complete trial of the
    study dominates it; for ``aeb``, its F_AEB cannot beat the best so far. The rejected
    trial is recorded as PRUNED. The bounds are checked after every evaluation batch once
    `rejection_min_images` images are scored (see `nas.rejection` for the bounds).

    Args:
        calib_batches: Training batches that recalibrate BN statistics before scoring.
        calib_batch_size: Images per recalibration batch.
        batch_size: Images per evaluation batch (does not change the result); with early
            rejection, the bounds are checked after every batch.
        profile: Energy per operation: ``fp32``, ``fp16``, ``int8`` or ``"E_MAC,E_AC"`` in pJ.
        eval_images: Score every subnet on this fixed, stratified subset of the validation
            split (the same for every subnet of a study); None scores the whole split.
            ``export`` always scores the whole test split.
        loader_workers: Processes that read evaluation images ahead (a DataLoader's
            ``num_workers``); 0 reads them in the evaluating process. Scores do not depend on it.
        early_rejection: Stop scoring subnets that provably cannot reach the Pareto front
            (``pareto``) or beat the best F_AEB (``aeb``), checked after each evaluation
            batch, and record their trials as PRUNED.
        rejection_min_images: Images scored before the first check of early rejection.
        rejection_confidence: None (default): reject only on bounds that hold with certainty,
            so no subnet the full evaluation would keep is ever rejected. A level in (0, 1),
            e.g. 0.99, also uses a statistical accuracy bound that holds with at least that
            probability, which rejects sooner.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast of the scoring passes
            (`nas.precision`); None: bf16 on a GPU that supports it, else fp32.
        first_layer: How the first layer of a static-image model is charged: ``once`` per
            image, as it is computed, or ``per_step``, at each of the T steps, as the
            published Spikformer tables count it (`energy.FIRST_LAYER_CONVENTIONS`). On
            event data the first layer runs at every step either way.
        energy_model: The energy model the objective, F_AEB's E_ref and budgets use
            (`energy.ENERGY_MODELS`): ``ops`` (45 nm operation prices, the Spikformer
            convention; the default), ``lemaire`` (compute and SRAM accesses priced by buffer
            size), ``loihi`` or ``spinnaker2`` (a chip's published cost per synaptic event,
            neuron update and spike).
        record_energy_models: Models recorded on request besides (``lemaire``: a second pass,
            see `energy.lemaire_energy`); ``ops``, ``loihi`` and ``spinnaker2`` are recorded
            for every complete trial anyway.
        energy_images: Images (a fixed stratified subset of those scored) that ``lemaire``
            prices one at a time.
    """

    calib_batches: int = 4
    calib_batch_size: int = 64
    batch_size: int = 256
    profile: str = "fp32"
    eval_images: int | None = None
    loader_workers: int = 0
    early_rejection: bool = False
    rejection_min_images: int = 100
    rejection_confidence: float | None = None
    precision: str | None = None
    first_layer: str = "once"
    energy_model: str = "ops"
    record_energy_models: tuple[str, ...] = ()
    energy_images: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "record_energy_models", tuple(dict.fromkeys(self.record_energy_models)))
        if self.energy_model not in ENERGY_MODEL_NAMES:
            raise ConfigError(f"unknown energy model '{self.energy_model}'; choose from {list(ENERGY_MODEL_NAMES)}")
        extra = [m for m in self.record_energy_models if m not in ON_REQUEST_MODELS]
        if extra:
            raise ConfigError(f"record_energy_models={list(self.record_energy_models)}: only {list(ON_REQUEST_MODELS)} "
                              f"can be asked for; {[m for m in ENERGY_MODEL_NAMES if m not in ON_REQUEST_MODELS]} are "
                              "recorded for every trial anyway")
        if self.energy_images < 1:
            raise ConfigError(f"energy_images={self.energy_images} must be >= 1")
        if self.first_layer not in FIRST_LAYER_CONVENTIONS:
            raise ConfigError(f"unknown first-layer convention '{self.first_layer}'; choose from "
                              f"{list(FIRST_LAYER_CONVENTIONS)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}'; choose from {list(PRECISIONS)}")
        for name in ("calib_batches", "calib_batch_size", "batch_size", "rejection_min_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.eval_images is not None and self.eval_images < 1:
            raise ConfigError(f"eval_images={self.eval_images} must be a positive number of images, or None for "
                              "the whole validation split")
        if self.loader_workers < 0:
            raise ConfigError(f"loader_workers={self.loader_workers} must be >= 0 (0: no worker processes)")
        if self.rejection_confidence is not None:
            if not 0.0 < self.rejection_confidence < 1.0:
                raise ConfigError(f"rejection_confidence={self.rejection_confidence} must be in (0, 1), e.g. 0.99, "
                                  "or None for bounds that hold with certainty")
            if not self.early_rejection:
                raise ConfigError(f"rejection_confidence={self.rejection_confidence} needs early_rejection=True")
        from energy.profiles import get_profile  # spikingjelly's presets; imported only when checked

        get_profile(self.profile)

    @property
    def energy_models(self) -> tuple[str, ...]:
        """Every energy model a complete trial records: those recorded for every trial, then the
        study's own and those asked for, if recorded only on request."""
        asked = [m for m in (self.energy_model, *self.record_energy_models) if m in ON_REQUEST_MODELS]
        return tuple(dict.fromkeys([m for m in ENERGY_MODEL_NAMES if m not in ON_REQUEST_MODELS] + asked))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Budgets:
    """Optional hard limits, recorded as Optuna constraints (<= 0 is feasible).

    Args:
        max_params: Most parameters a subnet may have.
        max_energy_mj: Most energy per image (mJ) a subnet may use, under the study's energy model.
    """

    max_params: int | None = None
    max_energy_mj: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_params", "max_energy_mj"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"budget {name}={value} must be a finite number > 0, or None for no limit")

    def constraints(self, params: int, energy_mj: float) -> dict[str, float]:
        """Optuna constraint values of a subnet: > 0 means over budget."""
        out = {}
        if self.max_params is not None:
            out["params"] = float(params - self.max_params)
        if self.max_energy_mj is not None:
            out["energy_mj"] = energy_mj - self.max_energy_mj
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
