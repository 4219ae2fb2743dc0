"""Errors the CLI reports as one line."""

from __future__ import annotations


class StudyError(RuntimeError):
    """A study cannot be created, found or run as asked."""
