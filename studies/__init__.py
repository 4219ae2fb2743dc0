"""Optuna studies on the supernet: storage, create/load with stored settings, CLI, analysis.

Import `studies.study` (create, load, run_worker) for the Python API; this package's root
stays light so that ``autospk-study --help`` starts fast.
"""

from .errors import StudyError
from .storage import DEFAULT_STORAGE, StorageError, normalize_url, open_storage

__all__ = ["DEFAULT_STORAGE", "StorageError", "StudyError", "normalize_url", "open_storage"]
