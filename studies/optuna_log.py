"""Optuna's log for the command line: warnings only, without the tracebacks of failed trials
(workers report their errors to `optimize`, which prints each in one line)."""

from __future__ import annotations

import logging
import warnings

import optuna


class _NoTracebacks(logging.Filter):
    """Drops Optuna's log of a trial failed by an error: the error's whole traceback, then
    ``Trial N failed with value None.``. The worker reports that error to `optimize`, which
    prints it in one line. A trial failed by a bad return value (no traceback) is still logged."""

    def __init__(self) -> None:
        super().__init__()
        self._dropped: str | None = None  # "Trial N", whose second line is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info is not None:
            self._dropped = message.split(" failed", 1)[0]
            return False
        if self._dropped is not None and message.startswith(f"{self._dropped} failed with value "):
            self._dropped = None
            return False
        return True


_NO_TRACEBACKS = _NoTracebacks()


def quiet_optuna(verbose: bool = False) -> None:
    """Optuna's log for the command line: warnings only, and no failed trial's traceback;
    with `verbose`, everything (each trial's result included).

    Optuna also flags the heartbeat, metric names and retry callback as experimental.
    """
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    log = logging.getLogger("optuna.study._optimize")
    if verbose:
        log.removeFilter(_NO_TRACEBACKS)
    else:
        log.addFilter(_NO_TRACEBACKS)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
