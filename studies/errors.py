"""Errors the CLI reports as one line."""

from __future__ import annotations

from models import ConfigError

from .storage import StorageError, failure_cause


class StudyError(RuntimeError):
    """A study cannot be created, found or run as asked."""


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
