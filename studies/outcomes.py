"""What `studies.workers.optimize` reports: the workers that failed, summarised one line per
cause, and the outcome of a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import StudyError


@dataclass(frozen=True)
class WorkerFailure:
    """A worker process that ended before its work was done.

    Attributes:
        index: The worker's number on this host (0, 1, ...).
        pid: Its process id.
        cause: What ended it, in one line: its error, ``killed by SIGKILL``, ...
        traceback: The error's traceback, when it raised one (for ``--verbose``).
    """

    index: int
    pid: int | None
    cause: str
    traceback: str | None = None


def failures_summary(failures: Sequence[WorkerFailure]) -> str:
    """One line per cause: ``  2 workers 0 (pid 11), 1 (pid 12): <cause>``, most frequent first,
    workers in index order whatever order they died in."""
    by_cause: dict[str, list[WorkerFailure]] = {}
    for failure in sorted(failures, key=lambda f: f.index):
        by_cause.setdefault(failure.cause, []).append(failure)
    lines = []
    for cause, group in sorted(by_cause.items(), key=lambda item: -len(item[1])):
        who = ", ".join(f"{f.index} (pid {f.pid})" for f in group)
        lines.append(f"  {'worker' if len(group) == 1 else f'{len(group)} workers'} {who}: {cause}")
    return "\n".join(lines)


class WorkersFailed(StudyError):
    """Workers died before the study held its trials; `failures` says which and why."""

    def __init__(self, message: str, failures: Sequence[WorkerFailure]) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


@dataclass(frozen=True)
class OptimizeResult:
    """What `optimize` did.

    Attributes:
        complete: Complete trials the study holds at the end (trials rejected early not counted).
        workers: Worker processes started (0 when there was nothing to do).
        failures: One entry per worker process that died (a worker killed by a signal is
            replaced, and may die again); the study still reached its trials.
        finished_before: Finished trials (`FINISHED`) the study held before the run.
        finished: Finished trials it holds at the end (other hosts' included).
        n_trials: The finished trials asked for (None: until the timeout).
    """

    complete: int
    workers: int
    failures: tuple[WorkerFailure, ...] = ()
    finished_before: int = 0
    finished: int = 0
    n_trials: int | None = None

    @property
    def nothing_to_do(self) -> bool:
        """Whether the study already held `n_trials` finished trials, so no worker started."""
        return self.n_trials is not None and self.finished_before >= self.n_trials

    @property
    def lost_summary(self) -> str:
        """What became of the workers that died: a header line, then one line per cause."""
        died = len(self.failures)
        return (f"{died} worker{'s' if died != 1 else ''} of {self.workers} died (a worker killed by a signal is "
                "replaced); their running trials were failed and retried, an architecture that kept killing its "
                f"worker given up on (show lists it)\n{failures_summary(self.failures)}")
