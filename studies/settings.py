"""Everything a worker needs to run a study, in one frozen object stored with the study.

`StudySettings` gathers the typed settings of `nas` (sampler, evaluation, F_AEB, budgets),
the data set, the search space and the supernet checkpoint. It is stored as a plain dict in
the study's user attr ``autospk`` (`to_dict`), with a version number; `from_dict` reads
every version written so far.

Versions:
    1: the first layout; the supernet's config was stored under ``supernet`` and the
       sampler's settings lacked ``swap_prob``.
    2: the supernet's config under ``supernet_cfg``; every sampler setting stored.
    3: adds ``data_fingerprint``, the checkpoint's (None for checkpoints older than
       fingerprints); versions 1 and 2 read with None.
    4: adds ``artifact_dir``, where trials store their per-layer energy tables
       (`studies.layer_artifacts`); older versions read with None (their trials stored none).
    5: the evaluation settings add ``energy_model``, ``record_energy_models`` and
       ``energy_images`` (`nas.EvaluationSettings`); older versions read with the defaults
       (``ops``, the model they were searched under).
    6: adds ``max_retries`` (retries of a trial whose worker died; older versions read with
       the default, 3) and ``written_by``, the autospk version that wrote the settings, which
       an older autospk names when it meets a version it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import ConfigError, SupernetConfig
from nas.dataspec import DatasetSpec
from nas.fitness import AEBSettings
from nas.settings import OBJECTIVES, Budgets, EvaluationSettings, SamplerSettings, settings_from_dict
from nas.space import SearchSpace

SETTINGS_ATTR = "autospk"
"""The study user attr that holds `StudySettings.to_dict()`."""

SETTINGS_VERSION = 6

MAX_RETRIES = 3
"""Retries of a trial whose worker died, before its architecture is given up on."""

HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats on database storages."""


class NewerVersionError(ConfigError):
    """Settings written by a newer autospk than this one; the message names both versions."""


def autospk_version() -> str:
    """The installed autospk's version (``unknown (not installed)`` for a checkout not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autospk")
    except PackageNotFoundError:
        return "unknown (not installed)"


def check_study_name(name: str) -> str:
    """`name`, if it can name a study: it needs a character that is not whitespace.

    Raises:
        ConfigError: for an empty or whitespace-only name.
    """
    if not name.strip():
        raise ConfigError(f"study name {name!r} is blank; give a name with at least one visible character, "
                          "e.g. 'digits-pareto'")
    return name


@dataclass(frozen=True)
class StudySettings:
    """The settings of one study.

    Args:
        objective: One of `OBJECTIVES`.
        checkpoint: Absolute path of the supernet checkpoint.
        space: The search space the supernet was trained for.
        dataset: The data set (subnets are scored on its validation split).
        supernet_cfg: The supernet's config (data shape and maxima).
        aeb: F_AEB settings, with the reference energy known.
        budgets: Optional limits on parameters and energy (Optuna constraints).
        sampler: Settings of our NSGA-II sampler.
        evaluation: How a subnet is scored.
        heartbeat_interval: Seconds between heartbeats of a running trial (database storages).
        max_retries: Retries of a trial whose worker died (killed, out of memory, a crash);
            after 1 + `max_retries` tries the architecture is given up on and recorded as
            failed with the cause.
        data_fingerprint: `nas.data.fingerprint` of the data the supernet was trained on, as
            its checkpoint recorded it; None if the checkpoint has none.
        artifact_dir: Absolute path of the folder of the study's Optuna artifacts (each
            trial's per-layer energy table, see `studies.layer_artifacts`); None: the study stores none.
    """

    objective: str
    checkpoint: str
    space: SearchSpace
    dataset: DatasetSpec
    supernet_cfg: SupernetConfig
    aeb: AEBSettings
    budgets: Budgets = field(default_factory=Budgets)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    max_retries: int = MAX_RETRIES
    data_fingerprint: str | None = None
    artifact_dir: str | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose from {list(OBJECTIVES)}")
        if self.aeb.e_ref is None:
            raise ConfigError("a study's F_AEB settings need the reference energy e_ref")
        if self.heartbeat_interval < 1:
            raise ConfigError(f"heartbeat_interval={self.heartbeat_interval} must be >= 1 (seconds)")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries={self.max_retries!r} must be an integer >= 0")
        if self.data_fingerprint is not None and not isinstance(self.data_fingerprint, str):
            raise ConfigError(f"data_fingerprint={self.data_fingerprint!r} must be a string or None")
        if self.artifact_dir is not None and not (isinstance(self.artifact_dir, str)
                                                  and Path(self.artifact_dir).is_absolute()):
            raise ConfigError(f"artifact_dir={self.artifact_dir!r} must be an absolute path or None")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, with the settings version."""
        return {
            "version": SETTINGS_VERSION,
            "written_by": autospk_version(),
            "objective": self.objective,
            "checkpoint": self.checkpoint,
            "space": self.space.to_dict(),
            "dataset": self.dataset.to_dict(),
            "supernet_cfg": self.supernet_cfg.to_dict(),
            "aeb": self.aeb.to_dict(),
            "budgets": self.budgets.to_dict(),
            "sampler": self.sampler.to_dict(),
            "evaluation": self.evaluation.to_dict(),
            "heartbeat_interval": self.heartbeat_interval,
            "max_retries": self.max_retries,
            "data_fingerprint": self.data_fingerprint,
            "artifact_dir": self.artifact_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        """Read settings stored by any version of `to_dict`.

        Raises:
            ConfigError: for an unknown version or malformed settings.
        """
        data = dict(data)
        version = data.pop("version", None)
        written_by = data.pop("written_by", None)
        if isinstance(version, int) and version > SETTINGS_VERSION:
            raise NewerVersionError(
                f"was written by {f'autospk {written_by}' if written_by else 'a newer autospk'} (settings version "
                f"{version}); this is autospk {autospk_version()}, which reads versions up to {SETTINGS_VERSION}: "
                "upgrade autospk (pip install -U autospk) to read it")
        if version in (1, 2, 3, 4, 5):
            data["max_retries"] = MAX_RETRIES
        if version == 1:
            data["supernet_cfg"] = data.pop("supernet")
        if version in (1, 2):
            data["data_fingerprint"] = None
        if version in (1, 2, 3):
            data["artifact_dir"] = None
        elif version not in (4, 5, SETTINGS_VERSION):
            raise ConfigError(f"study settings version {version!r} is unknown; this autospk reads versions "
                              f"1..{SETTINGS_VERSION} (a newer autospk may have written them)")
        try:
            return cls(
                objective=data["objective"],
                checkpoint=data["checkpoint"],
                space=SearchSpace.from_dict(data["space"]),
                dataset=DatasetSpec.from_dict(data["dataset"]),
                supernet_cfg=settings_from_dict(SupernetConfig, data["supernet_cfg"], "supernet_cfg"),
                aeb=settings_from_dict(AEBSettings, data["aeb"], "aeb"),
                budgets=settings_from_dict(Budgets, data["budgets"], "budgets"),
                sampler=settings_from_dict(SamplerSettings, data["sampler"], "sampler"),
                evaluation=settings_from_dict(EvaluationSettings, data["evaluation"], "evaluation"),
                heartbeat_interval=data["heartbeat_interval"],
                max_retries=data["max_retries"],
                data_fingerprint=data["data_fingerprint"],
                artifact_dir=data["artifact_dir"],
            )
        except KeyError as err:
            raise ConfigError(f"study settings lack {err.args[0]!r}") from None
