"""Progress of a search: a bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import optuna
from tqdm.auto import tqdm

from . import analysis

if TYPE_CHECKING:
    import pandas as pd

    from .settings import StudySettings


def search_summary(frame: pd.DataFrame, objective: str) -> str:
    """The state of a search in a few words: the front size and the best value so far.

    Args:
        frame: `analysis.trials_frame` of the study's complete trials.
        objective: The kind of study (`nas.settings.OBJECTIVES`).

    Returns:
        E.g. ``front 7, best accuracy 96.11%`` (``pareto``, ``pareto3``) or ``front 5, best
        F_AEB 0.9532`` (``aeb``, whose front is that of accuracy and energy); empty before
        the first feasible complete trial.
    """
    front = analysis.pareto_front(frame, objective=objective)
    if front.empty:
        return ""
    if objective == "aeb":
        return f"front {len(front)}, best F_AEB {analysis.best_aeb(frame)['f_aeb']:.4f}"
    return f"front {len(front)}, best accuracy {100 * front['accuracy'].max():.2f}%"


LINE_SECONDS = 30.0
"""Progress in a log file: a line at least this often while trials finish, so that a slow
search (trials of tens of seconds, generations of minutes) does not look hung."""


class SearchProgress:
    """Progress of `optimize`: a bar on a terminal; elsewhere (a log file) a plain line at
    every generation's worth of finished trials, when a trial finishes `LINE_SECONDS` or more
    after the last line, and at the end.

    Args:
        study: The study, read to summarise it (`search_summary`) when a trial finished.
        settings: Its settings.
        finished: Finished trials at the start.
        n_trials: Finished trials asked for (None: until the timeout).
        show: Whether to show anything at all.
    """

    def __init__(self, study: optuna.Study, settings: StudySettings, *, finished: int, n_trials: int | None,
                 show: bool) -> None:
        from nas.study_index import StudyIndex

        self.study, self.settings, self.n_trials = study, settings, n_trials
        self.index = StudyIndex.of(study)
        self.show = show
        self.bar = None
        if show and sys.stderr.isatty():
            self.bar = tqdm(total=n_trials, initial=min(finished, n_trials or finished), desc=study.study_name,
                            unit="trial", dynamic_ncols=True)
        self.step = settings.sampler.population_size
        self.shown = finished
        self.last_line = time.monotonic()
        if self.bar is not None and finished:
            self.bar.set_postfix_str(self._summarise())

    def _summarise(self) -> str:
        self.index.refresh(self.study)
        return search_summary(analysis.trials_frame(self.index.completed, self.settings.space),
                              self.settings.objective)

    def update(self, finished: int) -> None:
        if not self.show or finished == self.shown:
            return
        if self.bar is not None:
            self.bar.n = min(finished, self.bar.total or finished)
            self.bar.set_postfix_str(self._summarise(), refresh=False)
            self.bar.refresh()
            self.shown = finished
        elif finished // self.step > self.shown // self.step or time.monotonic() - self.last_line >= LINE_SECONDS:
            self._line(finished)

    def _line(self, finished: int) -> None:
        summary = self._summarise()
        total = f"/{self.n_trials}" if self.n_trials is not None else ""
        print(f"{self.study.study_name}: {finished}{total} trials" + (f", {summary}" if summary else ""),
              flush=True)
        self.shown = finished
        self.last_line = time.monotonic()

    def close(self, finished: int) -> None:
        if not self.show:
            return
        if self.bar is not None:
            self.update(finished)
            self.bar.close()
        elif finished != self.shown:
            self._line(finished)
