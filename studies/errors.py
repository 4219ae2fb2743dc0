"""Errors the CLI reports as one line.

A leaf module: it imports nothing of `studies`, so every other module can import it.
"""

from __future__ import annotations

from models import ConfigError


class StudyError(RuntimeError):
    """A study cannot be created, found or run as asked."""


class StorageError(RuntimeError):
    """The storage cannot be opened, reached, read or written."""


class StorageWarning(UserWarning):
    """The storage was repaired on the way: nothing was lost, but a user may want to know why."""


def failure_cause(err: BaseException) -> str | None:
    """The real cause of a failed storage operation, as one line.

    Optuna wraps a database error in its own, whose message guesses at "invalid data in the
    commit"; SQLAlchemy wraps the driver's error. The innermost error says what happened:
    "attempt to write a readonly database", "sorry, too many clients already".

    Args:
        err: Any exception.

    Returns:
        The innermost message of a database failure; None if `err` is no database failure.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    chain = [err]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    if not any(isinstance(e, (StorageInternalError, SQLAlchemyError)) for e in chain):
        return None
    inner = chain[-1]
    if isinstance(inner, DBAPIError) and inner.orig is not None:
        inner = inner.orig
    return " ".join(str(inner).split()) or type(inner).__name__


USER_ERRORS = (ConfigError, StudyError, StorageError, FileNotFoundError)
"""The errors the project raises on purpose: a user's to fix, never a bug."""


def error_line(err: BaseException) -> str | None:
    """What went wrong, in one line, for an error a user can act on; None for a bug.

    A user's errors are the ones the project raises on purpose (bad settings, studies or
    storages, missing files) and failed storage operations (their innermost cause).

    Args:
        err: Any exception.

    Returns:
        The message; None for any other error, whose traceback is the report to file.
    """
    if isinstance(err, USER_ERRORS):
        return str(err)
    return failure_cause(err)
