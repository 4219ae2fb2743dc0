"""Timing for the benchmarks, on `torch.utils.benchmark.Timer`: it synchronises CUDA around
each measurement and runs with the thread count a user's run has (this process's, not the
Timer's default of one thread).

Runs compared side by side are timed in turn, round after round (`interleaved_medians`), so
that a slow spell of a shared machine falls on every run alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping

import torch
from torch.utils import benchmark


def timer(fn: Callable[[], object]) -> benchmark.Timer:
    """A Timer of one call of `fn`, at this process's torch thread count."""
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call of `fn` (CUDA work included: the Timer waits for it)."""
    return timer(fn).timeit(1).median


def interleaved_medians(runs: Mapping[str, Callable[[], object]], repeats: int, *,
                        warmup: int = 1) -> dict[str, float]:
    """The median seconds per call of each run: `warmup` untimed calls each, then `repeats`
    rounds that time every run once, in turn."""
    timers = {key: timer(fn) for key, fn in runs.items()}
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, t in timers.items():
            times[key].append(t.timeit(1).median)
    return {key: statistics.median(values) for key, values in times.items()}
