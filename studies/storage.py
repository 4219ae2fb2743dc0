"""Storage URLs: SQLite (default), PostgreSQL/MySQL for many hosts, journal files for one host.

    sqlite:///relative.db  sqlite:////abs/path.db      one writer at a time
    sqlite:///file:path.db?mode=ro&uri=true            SQLite URI filename (here: read-only)
    postgresql://user@host/db  mysql+pymysql://root@host/db   many workers, many hosts
    journal:///abs/path.log  (or any path ending in .log/.journal)   many workers, one host/NFS

SQLite paths are made absolute, so workers started elsewhere open the same file. Journal
files are written so that a write cut short (a full disk) costs only the entry it was writing.

A process opens each storage once: `open_storage` returns the same object for the same URL,
so a database sees one connection pool per process however often studies are loaded. A
forked child forgets its parent's storages and opens its own.

Only `create` makes a storage. Everything that reads a study opens it with
``existing=True``, which refuses a SQLite or journal file that does not exist and a database
without Optuna's tables instead of creating them: a mistyped URL is an error naming it,
not a new empty storage.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StorageError, StorageWarning, failure_cause  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///autospk.db"
STORAGE_ENV = "AUTOSPK_STORAGE"

_STORAGES: dict[tuple[str, tuple[int, int] | None], tuple[optuna.storages.BaseStorage, tuple[int, int] | None]] = {}
"""The storages this process opened, by normalized URL and heartbeat (interval, grace period;
None: none), with the identity of their file."""

_LOCK = threading.Lock()


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
    if url.startswith("sqlite:///file:"):
        path, mark, query = url[len("sqlite:///file:"):].partition("?")
        return f"sqlite:///file:{Path(path).resolve()}{mark}{query}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    if url.startswith("journal://"):
        return "journal://" + str(Path(url[len("journal://"):]).resolve())
    if "://" not in url and url.endswith((".log", ".journal")):
        return "journal://" + str(Path(url).resolve())
    return url


def open_storage(url: str, *, existing: bool = False, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> optuna.storages.BaseStorage:
    """The storage of a URL, opened once per process and shared.

    A database storage opened with a heartbeat is a storage object of its own for each
    heartbeat, sharing the plain one's connection pool, so that two studies with different
    heartbeats in one process keep theirs (Optuna reads them from the storage object). They
    only act inside `optuna.Study.optimize`, which only workers call.

    Args:
        url: A storage URL (see the module doc).
        existing: Open only a storage that exists: a SQLite or journal file that is there,
            a database that holds Optuna's tables. Nothing is created, not even the tables.
        heartbeat_interval: For database storages, seconds between a running trial's
            heartbeats; a trial silent for `grace_period` is failed and retried
            (`studies.recovery.HeartbeatRetry`, within the study's ``max_retries``).
        grace_period: See `heartbeat_interval` (None: three intervals).

    Raises:
        StorageError: naming the URL and the reason; with `existing`, also for a storage
            that does not exist.
    """
    url = normalize_url(url)
    heartbeat = (heartbeat_interval, grace_period or 3 * heartbeat_interval) if heartbeat_interval else None
    with _LOCK:
        store, identity = _STORAGES.get((url, None), (None, None))
        if store is None or identity != _file_identity(url):
            if existing:
                _check_exists(url)
            store = _open(url)
            _STORAGES[(url, None)] = store, _file_identity(url)
            for key in [key for key in _STORAGES if key[0] == url and key[1] is not None]:
                del _STORAGES[key]  # the file was replaced: so were the heartbeat storages on it
        if heartbeat is None or not _is_database(store):
            return store
        with_heartbeat, _ = _STORAGES.get((url, heartbeat), (None, None))
        if with_heartbeat is None:
            with_heartbeat = _with_heartbeat(store, *heartbeat)
            _STORAGES[(url, heartbeat)] = with_heartbeat, _file_identity(url)
        return with_heartbeat


def _is_database(store: optuna.storages.BaseStorage) -> bool:
    from optuna.storages import RDBStorage

    return isinstance(store, RDBStorage)


def _with_heartbeat(store: optuna.storages.BaseStorage, interval: int,
                    grace_period: int) -> optuna.storages.BaseStorage:
    """A second `RDBStorage` object on `store`'s engine and sessions, with a heartbeat.

    Not `copy.copy`: RDBStorage pickles by building a new engine, and a new engine is a new
    connection pool per heartbeat."""
    from .recovery import HeartbeatRetry

    beating = object.__new__(type(store))
    beating.__dict__.update(store.__dict__)
    # The attributes RDBStorage.__init__ sets; optuna reads them at each optimize().
    beating.heartbeat_interval = interval
    beating.grace_period = grace_period
    beating.heartbeat_stale_trial_callback = HeartbeatRetry(grace_period)
    beating.failed_trial_callback = beating.heartbeat_stale_trial_callback
    return beating


def _file_path(url: str) -> Path | None:
    """The file of a SQLite or journal URL; None for database servers and in-memory SQLite."""
    if url.startswith("journal://"):
        return Path(url[len("journal://"):])
    if url.startswith("sqlite:///file:"):
        return Path(url[len("sqlite:///file:"):].partition("?")[0])
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):])
    return None


def _file_identity(url: str) -> tuple[int, int] | None:
    # A storage whose file was deleted or replaced would go on writing to the old inode.
    path = _file_path(url)
    if path is None:
        return None
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _forget_after_fork() -> None:
    global _LOCK
    # A forked child shares its parent's sockets and file handles: it must neither use nor close
    # them (SQLAlchemy's recipe for fork), nor wait on a lock a parent's thread held.
    for store, _ in _STORAGES.values():
        engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose(close=False)
    _STORAGES.clear()
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _open(url: str) -> optuna.storages.BaseStorage:
    from optuna.storages import JournalStorage

    from ._journal import JournalFile

    shown = mask_url(url)
    path = _file_path(url)
    if path is not None and not path.parent.is_dir():
        raise StorageError(f"cannot open storage {url}: folder {path.parent} does not exist")
    if url.startswith("journal://"):
        return JournalStorage(JournalFile(str(path)))
    try:
        return _rdb_storage(url)
    except ImportError as err:
        raise StorageError(f"cannot open storage {shown}: its database driver is not installed; "
                           "pip install 'autospk[postgres]' or 'autospk[mysql]'") from err
    except Exception as err:  # sqlalchemy raises driver-specific errors
        reason = failure_cause(err) or " ".join(str(err).split()) or type(err).__name__
        raise StorageError(f"cannot open storage {shown}: {reason}") from err


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """Optuna's database storage; a process that loses the race to create the tables of a new
    database to another (both see none, one inserts the schema version first) opens it again."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage

    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=_engine_kwargs(url))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError) as err:
            lost_race = isinstance(err, sqlalchemy.exc.IntegrityError) or any(
                text in str(err) for text in ("already exists", "database is locked"))
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


_SIBLINGS = {"sqlite": (".db", ".sqlite", ".sqlite3"), "journal": (".log", ".journal")}
"""File name endings of the storages `_check_exists` points out next to a missing one."""


def _check_exists(url: str) -> None:
    """Refuse a storage that does not exist, without creating anything.

    Raises:
        StorageError: for a missing SQLite or journal file (naming the storages beside it), or
            a database without Optuna's tables.
    """
    shown = mask_url(url)
    path = _file_path(url)
    if path is not None:
        if not path.is_file():
            kind = "journal" if url.startswith("journal://") else "sqlite"
            raise StorageError(f"storage {shown} does not exist: no file {path} ({_siblings(path, kind)}); check "
                               "the URL, or create a study there with `autospk-study create`")
        if url.startswith("journal://"):
            return
    if not _has_optuna_tables(url):
        raise StorageError(f"storage {shown} holds no studies: the database has no Optuna tables; check the URL, "
                           "or create a study there with `autospk-study create`")


def _siblings(path: Path, kind: str) -> str:
    """The storage files of `kind` in `path`'s folder, as a phrase."""
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    found = sorted(p.name for p in path.parent.iterdir() if p.is_file() and p.name.endswith(_SIBLINGS[kind]))
    if not found:
        return f"no {kind} storage in {path.parent}"
    shown = ", ".join(found[:5]) + (f", ... ({len(found)} in all)" if len(found) > 5 else "")
    return f"{kind} storages in {path.parent}: {shown}"


def _has_optuna_tables(url: str) -> bool:
    """Whether the database of `url` holds Optuna's tables; it is only read."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    except ImportError as err:
        raise StorageError(f"cannot open storage {mask_url(url)}: its database driver is not installed; "
                           "pip install 'autospk[postgres]' or 'autospk[mysql]'") from err
    try:
        return sqlalchemy.inspect(engine).has_table("studies")
    except Exception as err:  # the driver's own errors: unreachable server, no such database
        reason = failure_cause(err) or " ".join(str(err).split()) or type(err).__name__
        raise StorageError(f"cannot open storage {mask_url(url)}: {reason}") from err
    finally:
        engine.dispose()


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}

