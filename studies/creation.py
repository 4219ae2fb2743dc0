"""Telling a study being created from one whose `create` died, so that `create` replaces only
the latter (see `studies.study`)."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from .errors import StudyError
from .processes import alive
from .settings import SETTINGS_ATTR

_log = logging.getLogger("studies.study")

ENQUEUED_LARGEST = {"enqueued": "largest", "baseline": True}
"""User attrs of the trial `create` enqueues: the study's baseline (`analysis.baseline`).
Studies created before the baseline was named hold ``{"enqueued": "largest"}`` alone."""

CREATOR_ATTR = "autospk:creator"
"""Study user attr: the process creating the study (`studies.processes.this_process`, plus
``at``, seconds since the epoch), written right after the study itself."""

_CREATOR_WAIT = 2.0
"""Seconds a `create` waits for a settings-less study's creator record to appear."""
_OTHER_HOST_GRACE = 300.0
"""Seconds after which a settings-less study created on another host counts as half-created."""
_SKIP_WAIT = 300.0
"""Seconds ``skip_if_exists`` waits for another process to finish creating the study."""



def study_names(store: optuna.storages.BaseStorage) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False))


def half_created(study: optuna.Study) -> bool:
    """Whether `study` has no settings and no trials but the largest subnet `create` enqueues.

    `create` writes the settings last, so this is what a `create` killed midway leaves. A
    study another program made and left empty looks the same, and holds nothing to lose
    either.
    """
    if SETTINGS_ATTR in study.user_attrs:
        return False
    return all(t.state == TrialState.WAITING and t.user_attrs in (ENQUEUED_LARGEST, {"enqueued": "largest"})
               for t in study.get_trials(deepcopy=False))


def creating(study: optuna.Study) -> Mapping[str, Any] | None:
    """The creator of a study still being created (no settings yet, its creator alive), or None."""
    creator = study.user_attrs.get(CREATOR_ATTR)
    if SETTINGS_ATTR in study.user_attrs or not isinstance(creator, Mapping):
        return None
    if creator.get("host") == socket.gethostname():
        return creator if alive(creator) else None
    return creator if time.time() - float(creator.get("at", 0)) < _OTHER_HOST_GRACE else None


def settle(store: optuna.storages.BaseStorage, study_name: str) -> optuna.Study | None:
    """The study of that name once its state is clear: None if there is none; else one that has
    its settings, is half-created, or is being created (`_creating`). A study without settings
    and without a creator record is read again for a moment: its creator may be about to
    write the record."""
    deadline = time.monotonic() + _CREATOR_WAIT
    while True:
        if study_name not in study_names(store):
            return None
        study = optuna.load_study(study_name=study_name, storage=store)
        attrs = study.user_attrs
        if SETTINGS_ATTR in attrs or CREATOR_ATTR in attrs or time.monotonic() > deadline:
            return study
        time.sleep(0.1)


def wait_for_settings(store: optuna.storages.BaseStorage, study_name: str) -> None:
    """Wait while another process creates the study (``skip_if_exists``)."""
    deadline = time.monotonic() + _SKIP_WAIT
    while time.monotonic() < deadline:
        study = settle(store, study_name)
        if study is None or SETTINGS_ATTR in study.user_attrs or creating(study) is None:
            return
        time.sleep(0.5)


def in_progress_error(study_name: str, creator: Mapping[str, Any]) -> StudyError:
    return StudyError(f"study '{study_name}' is being created right now by another process (pid {creator.get('pid')} "
                      f"on {creator.get('host')}); pass --skip-if-exists to wait for it and use it, or choose another "
                      "--study-name")


def replace_half_created(store: optuna.storages.BaseStorage, study: optuna.Study) -> None:
    """Delete a half-created study, the one found and no other: by its id, after reading it
    again (another `create` may have replaced it meanwhile, and SQLite reuses ids)."""
    try:
        study_id = store.get_study_id_from_name(study.study_name)
    except KeyError:
        return  # replaced and not yet created again: nothing to delete
    again = optuna.load_study(study_name=study.study_name, storage=store)
    if again.user_attrs.get(CREATOR_ATTR) != study.user_attrs.get(CREATOR_ATTR) or not half_created(again) \
            or creating(again) is not None:
        return
    _log.warning("study '%s' was half-created (an interrupted create); deleting it and creating it anew",
                 study.study_name)
    with contextlib.suppress(KeyError):
        store.delete_study(study_id)


def half_created_error(study_name: str) -> StudyError:
    return StudyError(f"study '{study_name}' is half-created: it has no autospk settings and no trial has run (its "
                      "`autospk-study create` was interrupted, or another program made it); run the same create "
                      f"again to replace it, or remove it with `autospk-study delete --study-name {study_name}`")
