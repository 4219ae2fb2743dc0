"""Storage URLs: SQLite (default), PostgreSQL/MySQL for many hosts, journal files for one host.

    sqlite:///relative.db  sqlite:////abs/path.db      one writer at a time
    postgresql://user@host/db  mysql+pymysql://root@host/db   many workers, many hosts
    journal:///abs/path.log  (or any path ending in .log/.journal)   many workers, one host/NFS

SQLite paths are made absolute, so workers started elsewhere open the same file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///autospk.db"
STORAGE_ENV = "AUTOSPK_STORAGE"


class StorageError(RuntimeError):
    """The storage cannot be opened or reached."""


def default_storage() -> str:
    return os.environ.get(STORAGE_ENV, DEFAULT_STORAGE)


def mask_url(url: str) -> str:
    """The URL as it may be printed: a database password becomes ``***``.

    SQLite and journal URLs hold no password and are returned unchanged.
    """
    if "://" not in url or url.startswith(("sqlite:", "journal:")):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not a URL SQLAlchemy can open, yet it may still spell out a password.
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def normalize_url(url: str) -> str:
    """Absolute SQLite and journal URLs; other URLs unchanged."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    if url.startswith("journal://"):
        return "journal://" + str(Path(url[len("journal://"):]).resolve())
    if "://" not in url and url.endswith((".log", ".journal")):
        return "journal://" + str(Path(url).resolve())
    return url


def open_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int = 3) -> optuna.storages.BaseStorage:
    """Open a storage URL.

    Args:
        url: A storage URL (see the module doc).
        heartbeat_interval: For database storages, seconds between a running trial's
            heartbeats; a trial silent for `grace_period` is failed and retried.
        grace_period: See `heartbeat_interval`.
        max_retry: Retries of a trial whose worker died.

    Raises:
        StorageError: naming the URL and the reason.
    """
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    url = normalize_url(url)
    shown = mask_url(url)
    if url.startswith("journal://"):
        path = Path(url[len("journal://"):])
        if not path.parent.is_dir():
            raise StorageError(f"cannot open storage {url}: folder {path.parent} does not exist")
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise StorageError(f"cannot open storage {url}: folder {folder} does not exist")
    kwargs = {}
    if heartbeat_interval:
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period or 3 * heartbeat_interval,
                  "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=max_retry)}
    try:
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
    except ImportError:
        raise StorageError(f"cannot open storage {shown}: its database driver is not installed; "
                           "pip install 'autospk[postgres]' or 'autospk[mysql]'") from None
    except Exception as err:  # sqlalchemy raises driver-specific errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StorageError(f"cannot open storage {shown}: {reason[:300]}") from None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
