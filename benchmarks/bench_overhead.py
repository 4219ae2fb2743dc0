"""Per-trial overhead of a search: sampler + storage + our objective's bookkeeping, no model.

Every sampler runs the paper space's two-objective study with an instant evaluator, so that
what is timed is everything a real trial costs besides the evaluation itself: the sampler's
proposal (ours reads the study, screens children with its surrogate and claims the
architecture), our objective's twin check and user attrs, the worker's dead-trial sweep and
owner record, and the storage's writes. The instant evaluator scores a subnet from its
analytic energy and a hash of its genome, so that the front keeps moving as in a real search.

For each storage, each sampler runs `--n-trials` trials in a fresh study, one after the
other in this process; the table gives the mean milliseconds per trial in windows of
`--window` trials, and the ratio of the last window to the first full one after
generation 0 (the window ending at `--window`).

    python benchmarks/bench_overhead.py [--storages memory sqlite journal postgresql]
        [--n-trials 5000] [--window 200] [--samplers ours-4 ours-1 nsga2 random]
        [--postgresql postgresql://postgres@127.0.0.1:5432/test] [--folder DIR]

SQLite and journal files go to /dev/shm by default: on a disk, every commit waits for a flush
(30-40 per trial here), which adds a constant to every row and hides the growth with n.
Machine load changes the absolute figures; compare rows of one run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from energy import analytic_energy
from models import SubnetConfig, count_params
from nas import EvaluationSettings, SamplerSettings, SpikformerNSGAIISampler, load_space
from nas.fitness import AEBSettings
from nas.objective import SubnetObjective
from studies.optuna_log import quiet_optuna
from studies.recovery import OwnerRecordingSampler, fail_dead_trials, this_worker
from studies.storage import open_storage

SAMPLERS = ("ours-4", "ours-1", "nsga2", "random")
POPULATION = 50


@dataclass(frozen=True)
class _Energy:
    energy_mj: float
    sops: float
    macs: float
    firing_rate: float


@dataclass(frozen=True)
class _InstantScore:
    config: SubnetConfig
    accuracy: float
    energy: _Energy
    params: int
    rejected: bool = False

    def attrs(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "energy_mj": self.energy.energy_mj, "sops": self.energy.sops,
                "macs": self.energy.macs, "params": self.params, "firing_rate": self.energy.firing_rate,
                "arch_id": self.config.arch_id, "config": self.config.active().to_json(), "eval_seconds": 0.0}


class InstantEvaluator:
    """Scores a subnet at once: accuracy grows with its log cost, plus genome-hashed noise.

    It has no images to reject a subnet early on, so the objective asks for no rejection rule.
    """

    settings = EvaluationSettings(early_rejection=False)

    def __init__(self, supernet_cfg) -> None:
        self.supernet_cfg = supernet_cfg
        self.cost = analytic_energy(supernet_cfg)
        self.e_max = self.cost(SPACE.largest())

    def __call__(self, config: SubnetConfig, reject: object = None) -> _InstantScore:
        energy = self.cost(config)
        noise = int(hashlib.sha1(config.arch_id.encode()).hexdigest()[:8], 16) / 16**8
        accuracy = 0.5 + 0.4 * (energy / self.e_max) ** 0.3 + 0.1 * noise
        return _InstantScore(config, min(accuracy, 1.0), _Energy(energy, energy * 1e9, 0.0, 0.1),
                             count_params(self.supernet_cfg, config))


SPACE = load_space("paper")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    supernet_cfg = SPACE.supernet_config(in_channels=3, img_size=32, num_classes=10)
    if name.startswith("ours-"):
        settings = SamplerSettings(population_size=POPULATION, candidates=int(name.split("-")[1]), seed=seed)
        return SpikformerNSGAIISampler(SPACE, settings=settings, cost=analytic_energy(supernet_cfg))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SystemExit(f"unknown sampler '{name}'; choose from {list(SAMPLERS)}")


def storage_url(kind: str, folder: Path, postgresql: str) -> str | None:
    if kind == "memory":
        return None
    if kind == "sqlite":
        return f"sqlite:///{folder}/overhead-{uuid.uuid4().hex[:8]}.db"
    if kind == "journal":
        return f"journal://{folder}/overhead-{uuid.uuid4().hex[:8]}.log"
    if kind == "postgresql":
        return postgresql
    raise SystemExit(f"unknown storage '{kind}'; choose from memory, sqlite, journal, postgresql")


def run(kind: str, sampler_name: str, n_trials: int, folder: Path, postgresql: str) -> list[float]:
    """Seconds per trial of one study, in trial order."""
    url = storage_url(kind, folder, postgresql)
    storage = open_storage(url) if url is not None else optuna.storages.InMemoryStorage()
    name = f"overhead-{sampler_name}-{uuid.uuid4().hex[:8]}"
    sampler = OwnerRecordingSampler(make_sampler(sampler_name, seed=0), this_worker())
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                directions=["maximize", "minimize"])
    supernet_cfg = SPACE.supernet_config(in_channels=3, img_size=32, num_classes=10)
    evaluator = InstantEvaluator(supernet_cfg)
    evaluate = SubnetObjective(SPACE, evaluator, "pareto", AEBSettings(e_ref=evaluator.e_max))

    def objective(trial: optuna.Trial):
        fail_dead_trials(study, orphan_grace=60.0)
        return evaluate(trial)

    ends: list[float] = []
    start = time.perf_counter()
    bar_every = max(1, n_trials // 10)

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ends.append(time.perf_counter())
        if len(ends) % bar_every == 0:
            print(f"  {kind} {sampler_name}: {len(ends)}/{n_trials} trials, {ends[-1] - start:.0f} s",
                  file=sys.stderr, flush=True)

    try:
        study.optimize(objective, n_trials=n_trials, callbacks=[record], gc_after_trial=False)
    finally:
        if kind == "postgresql":
            optuna.delete_study(study_name=name, storage=storage)
    return [b - a for a, b in zip([start, *ends[:-1]], ends)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storages", nargs="+", default=["sqlite", "journal", "postgresql"])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--n-trials", type=int, default=5000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--folder", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                        help="where the SQLite and journal files go (default: /dev/shm, a memory file system, "
                             "so that the disk's flush time does not drown the growth being measured)")
    parser.add_argument("--postgresql", default=os.environ.get("AUTOSPK_BENCH_POSTGRESQL",
                                                               "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if args.n_trials < 2 * args.window:
        raise SystemExit(f"--n-trials {args.n_trials} must be at least two windows ({2 * args.window})")
    quiet_optuna()
    warnings.filterwarnings("ignore", category=UserWarning)
    windows = list(range(args.window, args.n_trials + 1, args.window))
    shown = sorted({windows[0], *[w for w in (1000, 2000, 5000, 10000) if w in windows], windows[-1]})
    rows = []
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        for kind in args.storages:
            for sampler_name in args.samplers:
                seconds = run(kind, sampler_name, args.n_trials, Path(tmp), args.postgresql)
                per_window = [1000 * statistics.fmean(seconds[w - args.window:w]) for w in windows]
                rows.append((kind, sampler_name, per_window))
                print(f"{kind:10s} {sampler_name:8s} " + " ".join(f"{m:7.1f}" for m in per_window),
                      file=sys.stderr, flush=True)
    print()
    print(f"ms per trial (mean of the {args.window} trials ending at n), paper space, instant objective, "
          f"population {POPULATION}")
    head = "| storage | sampler | " + " | ".join(f"n={n}" for n in shown) + f" | n={shown[-1]} / n={shown[0]} |"
    print(head)
    print("|" + "---|" * (len(shown) + 3))
    for kind, sampler_name, per_window in rows:
        values = [per_window[windows.index(n)] for n in shown]
        print(f"| {kind} | {sampler_name} | " + " | ".join(f"{v:.1f}" for v in values)
              + f" | {values[-1] / values[0]:.2f} |")


if __name__ == "__main__":
    main()
