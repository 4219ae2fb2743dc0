"""Each trial's per-layer energy, stored with the study as an Optuna artifact.

A worker that scores a subnet in full uploads its per-layer energy table
(`nas.SubnetScore.layer_table`: `LAYER_COLUMNS`, then ``energy_mj_<model>`` for each energy
model that prices layers) as ``energy_layers.csv`` with `optuna.artifacts.upload_artifact`, into a
`optuna.artifacts.FileSystemArtifactStore` in the study's ``artifact_dir``; the trial's user
attr `ARTIFACT_ATTR` names the artifact. optuna-dashboard lists the file under the trial
(``optuna-dashboard URL --artifact-dir DIR`` serves it), `optuna.artifacts` reads it, and
``autospk-study plot --trial N`` and the notebook draw it without measuring anything again.
A duplicate trial copies its twin's user attrs, so it names its twin's table; a trial
rejected early stores none (its figures are partial).

Why an artifact and not a compressed user attr: artifacts are where Optuna and
optuna-dashboard users look for a trial's files, a CSV reads in any tool, and the table
stays out of the storage's rows, which every worker reads again and again while it proposes.
A user attr would serve every storage without a shared folder, but only as an opaque blob
in the dashboard. The folder is the price, and the project already pays it: every worker
reads the supernet checkpoint at the absolute path stored with the study, so workers on
many hosts (PostgreSQL, MySQL, a journal on NFS) share a file system already.
`default_artifact_dir` puts the folder next to a SQLite or journal file, and for database
servers next to the checkpoint; ``create --artifact-dir`` chooses another one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pandas as pd
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from .errors import StudyError
from .settings import StudySettings
from .storage import _file_path, normalize_url

LAYER_COLUMNS = ("layer", "kind", "dense_macs", "input_rate", "ops", "energy_mj", "energy_share")
"""Columns every stored table has (those of `energy.EnergyReport.layers`, under the study's
energy model); tables stored since energy models came also have ``energy_mj_<model>`` columns
and a row of kind ``NEURON`` per neuron layer."""

ARTIFACT_ATTR = "energy_layers_artifact"
"""Trial user attr: the id of the artifact that holds the trial's per-layer energy table."""

FILENAME = "energy_layers.csv"
"""The artifact's file name, as the dashboard lists it."""


def default_artifact_dir(storage: str, checkpoint: str | Path) -> Path:
    """Where a new study's artifacts go by default.

    Next to the storage's file for SQLite and journal storages (``autospk.db`` ->
    ``autospk.db.artifacts``); for database servers and in-memory SQLite, next to the
    supernet checkpoint (``supernet.pt`` -> ``supernet.pt.artifacts``), which every worker
    host reads at its stored path already. Absolute either way.
    """
    path = _file_path(normalize_url(storage))
    if path is None:
        path = Path(checkpoint)
    return Path(f"{path.resolve()}.artifacts")


def artifact_store(settings: StudySettings) -> FileSystemArtifactStore | None:
    """The study's artifact store (its folder made if missing); None for a study that
    stores no artifacts (created before version 4 of the settings)."""
    if settings.artifact_dir is None:
        return None
    folder = Path(settings.artifact_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"cannot make the study's artifact folder {folder}: {err.strerror}") from None
    return FileSystemArtifactStore(folder)


class LayerRecorder:
    """Store a trial's per-layer energy table in an artifact store (`nas.SubnetObjective`'s
    ``record_layers``).

    Args:
        store: The study's artifact store.
    """

    def __init__(self, store: FileSystemArtifactStore) -> None:
        self.store = store

    def __call__(self, trial: optuna.Trial, layers: pd.DataFrame) -> dict[str, str]:
        """Upload `layers`; returns the user attrs to record, ``{ARTIFACT_ATTR: id}``."""
        with tempfile.TemporaryDirectory(prefix="autospk-layers-") as folder:
            path = Path(folder) / FILENAME
            extra = [c for c in layers.columns if c.startswith("energy_mj_")]
            layers.loc[:, [*LAYER_COLUMNS, *extra]].to_csv(path, index=False)
            artifact_id = upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=trial,
                                          mimetype="text/csv")
        return {ARTIFACT_ATTR: artifact_id}


def stored_layers(settings: StudySettings, trial: FrozenTrial) -> pd.DataFrame | None:
    """The per-layer energy table a trial stored, or None if it stored none.

    Args:
        settings: The study's settings (for its artifact folder).
        trial: A trial of the study.

    Returns:
        The table with `LAYER_COLUMNS` (and any ``energy_mj_<model>`` columns), as the trial
        measured it (floats read back exactly).

    Raises:
        StudyError: if the trial names a table that its study's artifact folder lacks.
    """
    artifact_id = trial.user_attrs.get(ARTIFACT_ATTR)
    if artifact_id is None or settings.artifact_dir is None:
        return None
    store = FileSystemArtifactStore(settings.artifact_dir)
    try:
        with store.open_reader(artifact_id) as reader:
            return pd.read_csv(reader)
    except (ArtifactNotFound, ValueError):
        raise StudyError(f"trial {trial.number}'s per-layer energy table (artifact {artifact_id}) is not in "
                         f"{settings.artifact_dir}; restore that folder, or measure the trial again") from None
