"""Search quality of our sampler against Optuna's, on an easy and a hard search problem.

Problems (--problem):

- ``digits``: the `digits` space (up to 2 blocks of width 64, about 98k subnets) on the
  digits supernet. Nearly every subnet scores 90-99%, and by 200 trials every sampler has
  found most of the front, so this problem shows how fast a sampler gets there: HV at 50,
  100 and 200 trials.
- ``digits-large``: the `digits-large` space (up to 4 blocks, five widths from 8 to 24, more
  MLP ratios, neuron-gene and T values, the threshold driving every block neuron but the
  attention one; about 1e13 subnets) on a supernet of its own, trained on the same digits
  with the same `digits` recipe and the uniform rule (30 epochs, under 3 minutes on one core). Its narrow stem
  leaves accuracy to width, T and the neurons: only about a third of the subnets reach 80%,
  and 200 random trials are far from the front. HV at 100, 200 and 500 trials.

Each sampler runs the two-objective study (accuracy up, energy down) on the problem's
trained supernet once per seed. Ours runs twice: as shipped (each proposal the most
promising of --candidates children, screened by a surrogate fitted on the finished trials)
and with screening off (candidates=1, plain NSGA-II with a cost-stratified first
generation). Optuna's NSGAIISampler gets the same population size.

A subnet is scored with its BN statistics recalibrated on one fixed batch of 64 training
images (the library default is 4 batches) and the whole validation split in one batch:
deterministic, and about half the cost of the default, which 5 samplers x 10 seeds x 500
trials on one core need. Scores are kept in a JSON cache per problem (--cache), keyed by
arch id and tied to the checkpoint's content and these settings, so a rerun only
evaluates architectures it has not seen.

Hypervolume is computed with moocore on the points (1 - accuracy, energy_mj), both
minimised, against the reference point (0.2, E_ref), E_ref the energy of the largest
subnet: subnets at least 80% accurate and no costlier than the largest one. It is reported
as a fraction of the reference box, as mean ± standard error of the mean over the seeds
(sample standard deviation / sqrt(seeds)). Every trial counts as an evaluation, duplicates
included, since a study evaluates every trial it runs. "Evaluations to reach Random's HV"
is the first trial count n at which the mean over seeds of a sampler's HV of its first n
trials reaches the mean HV of Random at the last budget; per seed, the median of the same
count and how many seeds reach it. A duplicate is a trial whose architecture an earlier
trial of the same study already had.

Sampler settings (population size, candidates, the screening rule) were tuned on seeds
100-109 only; the tables in the README come from seeds 0-9.

    python benchmarks/bench_search.py [--problem digits|digits-large] [--seeds 0-9]
        [--budgets 100 200 500] [--population-size N] [--candidates 4] [--samplers ...]

Trains the problem's supernet first (about 2 minutes for digits, 3 for digits-large, on one
core) when its checkpoint is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import moocore
import numpy as np
import optuna
import torch

from energy import analytic_energy
from models import SubnetConfig, SupernetConfig
from nas import (
    DatasetSpec,
    EvaluationSettings,
    SamplerSettings,
    SearchSpace,
    SpikformerNSGAIISampler,
    SubnetEvaluator,
    load_checkpoint,
    load_dataset,
    load_space,
)
from nas.recipes import get_recipe

OURS = "autospk NSGA-II"
RANDOM = "optuna RandomSampler"

EVALUATION = EvaluationSettings(calib_batches=1, calib_batch_size=64, batch_size=256)
"""One recalibration batch and one evaluation batch (the validation split has 216 images)."""


@dataclass(frozen=True)
class Problem:
    """A search problem: a space, the supernet trained for it and the budgets reported.

    Args:
        space: Preset name of the search space.
        checkpoint: Default path of the trained supernet.
        cache: Default path of the JSON cache of scores.
        budgets: Trial counts at which the hypervolume is reported; the last is the run length.
        population_size: Default population of our sampler and Optuna's NSGA-II.
    """

    space: str
    checkpoint: str
    cache: str
    budgets: tuple[int, ...]
    population_size: int


PROBLEMS = {
    "digits": Problem("digits", "autospk-runs/digits-supernet.pt", "autospk-runs/bench_search_cache.json",
                      (50, 100, 200), 20),
    "digits-large": Problem("digits-large", "autospk-runs/digits-large-supernet.pt",
                            "autospk-runs/bench_search_digits-large_cache.json", (100, 200, 500), 20),
}


def make_samplers(space: SearchSpace, supernet_cfg: SupernetConfig, population: int, seed: int,
                  candidates: int) -> dict[str, optuna.samplers.BaseSampler]:
    cost = analytic_energy(supernet_cfg)

    def ours(k: int) -> SpikformerNSGAIISampler:
        # num_parents follows the population (SamplerSettings derives it).
        settings = SamplerSettings(population_size=population, candidates=k, seed=seed)
        return SpikformerNSGAIISampler(space, settings=settings, cost=cost)

    return {
        OURS: ours(candidates),
        f"{OURS}, no screening": ours(1),
        "optuna NSGAIISampler": optuna.samplers.NSGAIISampler(population_size=population, seed=seed),
        "optuna TPESampler": optuna.samplers.TPESampler(seed=seed),
        RANDOM: optuna.samplers.RandomSampler(seed=seed),
    }


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume as a fraction of the box between the origin and `ref`."""
    inside = points[(points < ref).all(axis=1)]
    return float(moocore.hypervolume(inside, ref=ref)) / float(np.prod(ref)) if len(inside) else 0.0


def hv_curve(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume of the first n points, for n = 1 .. len(points)."""
    return np.array([hypervolume(points[:n], ref) for n in range(1, len(points) + 1)])


def mean_sem(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample sd / sqrt(n); 0 for one value)."""
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.mean(values), sem


def first_reaching(curve: np.ndarray, target: float) -> int | None:
    """The first trial count whose hypervolume reaches `target`, or None."""
    hits = np.flatnonzero(curve >= target)
    return int(hits[0]) + 1 if len(hits) else None


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-9"`` (a range, both ends included) or ``"100,102,104"``."""
    if "-" in text:
        first, last = (int(s) for s in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


class ScoreCache:
    """Scores by arch id, kept in a JSON file that is only valid for one checkpoint and settings.

    Args:
        path: The JSON file (read if it exists and matches, written by `save`).
        checkpoint: The supernet's checkpoint file; a retrained supernet starts a new cache.
        settings: How subnets are scored; other settings start a new cache.
    """

    def __init__(self, path: Path, checkpoint: Path, settings: EvaluationSettings) -> None:
        self.path = path
        self.key = {"checkpoint_sha1": hashlib.sha1(checkpoint.read_bytes()).hexdigest(),
                    "evaluation": settings.to_dict()}
        self.scores: dict[str, list[float]] = {}
        if path.exists():
            stored = json.loads(path.read_text())
            if {k: stored.get(k) for k in self.key} == self.key:
                self.scores = stored["scores"]
            else:
                print(f"{path} holds scores of another checkpoint or evaluation settings: starting afresh")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({**self.key, "scores": self.scores}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="digits")
    parser.add_argument("--checkpoint", default=None, help="the problem's supernet (default: per problem)")
    parser.add_argument("--cache", default=None, help="JSON cache of scores (default: per problem)")
    parser.add_argument("--seeds", type=parse_seeds, default=list(range(10)),
                        help="seeds, e.g. 0-9 (default) or 100,101")
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="trial counts reported; the last is the run length (default: per problem)")
    parser.add_argument("--population-size", type=int, default=None, help="default: per problem")
    parser.add_argument("--candidates", type=int, default=SamplerSettings().candidates,
                        help="children screened per proposal by our sampler (its default)")
    parser.add_argument("--samplers", nargs="*", default=None, help="substrings of the sampler names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    problem = PROBLEMS[args.problem]
    budgets = sorted(args.budgets or problem.budgets)
    trials = budgets[-1]
    population = args.population_size or problem.population_size

    path = Path(args.checkpoint or problem.checkpoint)
    if not path.exists():
        from nas.train import train_supernet

        print(f"training the {problem.space} supernet on digits -> {path}", flush=True)
        # The uniform rule, as the supernets of the README's tables were trained.
        recipe = get_recipe("digits").with_rule("uniform")
        train_supernet(load_space(problem.space), DatasetSpec("digits"), recipe, path, progress=False)
    ckpt = load_checkpoint(path)
    space = ckpt.space
    data = load_dataset(ckpt.dataset)
    evaluator = SubnetEvaluator(ckpt.build_supernet(), data.train_eval, data.val, settings=EVALUATION)
    cache = ScoreCache(Path(args.cache or problem.cache), path, EVALUATION)

    def score(cfg: SubnetConfig) -> list[float]:
        if cfg.arch_id not in cache.scores:
            s = evaluator(cfg)
            cache.scores[cfg.arch_id] = [s.accuracy, s.energy.energy_mj]
        return cache.scores[cfg.arch_id]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        cfg = space.suggest(trial)
        trial.set_user_attr("arch_id", cfg.arch_id)
        accuracy, energy = score(cfg)
        return accuracy, energy

    e_ref = score(space.largest())[1]
    ref = np.array([0.2, e_ref])

    curves: dict[str, list[np.ndarray]] = {}
    duplicates: dict[str, list[int]] = {}
    start = time.perf_counter()
    for seed in args.seeds:
        samplers = make_samplers(space, ckpt.supernet_cfg, population, seed, args.candidates)
        for name, sampler in samplers.items():
            if args.samplers and not any(k in name for k in args.samplers):
                continue
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
            study.optimize(objective, n_trials=trials)
            points = np.array([[1 - t.values[0], t.values[1]] for t in study.trials])
            ids = [t.user_attrs["arch_id"] for t in study.trials]
            curves.setdefault(name, []).append(hv_curve(points, ref))
            duplicates.setdefault(name, []).append(len(ids) - len(set(ids)))
            print(f"seed {seed} {name}: HV@{trials} {curves[name][-1][-1]:.4f} "
                  f"({time.perf_counter() - start:.0f} s, {len(cache.scores)} distinct subnets scored so far)",
                  flush=True)
            cache.save()

    seeds = f"seeds {args.seeds[0]}-{args.seeds[-1]}" if args.seeds == list(
        range(args.seeds[0], args.seeds[-1] + 1)) else f"seeds {','.join(map(str, args.seeds))}"
    print()
    print(f"problem {args.problem}: space '{space.name}' ({space.size():.3g} subnets), {len(args.seeds)} {seeds}, "
          f"population {population}, {args.candidates} candidates screened per proposal by ours; "
          f"E_ref (largest subnet) = {e_ref:.6f} mJ")
    print("hypervolume of (1 - accuracy, energy mJ), both minimised, as a fraction of the box up to "
          "(0.2, E_ref); mean ± standard error of the mean over seeds")
    print()
    print(f"| sampler | {' | '.join(f'HV@{b}' for b in budgets)} | duplicate trials (mean) |")
    print("|---|" + "---|" * len(budgets) + "---|")
    stats = {name: [mean_sem([float(c[b - 1]) for c in runs]) for b in budgets] for name, runs in curves.items()}
    for name, cells in stats.items():
        row = " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in cells)
        print(f"| {name} | {row} | {statistics.mean(duplicates[name]):.1f} |")

    if OURS in stats and any(not n.startswith(OURS) for n in stats):
        print()
        for i, b in enumerate(budgets):
            rival, (m, s) = max(((n, c[i]) for n, c in stats.items() if not n.startswith(OURS)),
                                key=lambda item: item[1][0])
            lead = stats[OURS][i][0] - m
            print(f"HV@{b}: ours leads the best other sampler ({rival}) by {lead:+.4f}; "
                  f"standard errors {stats[OURS][i][1]:.4f} (ours), {s:.4f} ({rival})")
    if RANDOM in stats:
        target = stats[RANDOM][-1][0]
        print()
        print(f"evaluations to reach Random's mean HV@{trials} ({target:.4f}):")
        print("| sampler | on the mean curve | per seed: median (seeds reaching it) |")
        print("|---|---|---|")
        for name, runs in curves.items():
            on_mean = first_reaching(np.mean(runs, axis=0), target)
            per_seed = [first_reaching(c, target) for c in runs]
            reached = [n for n in per_seed if n is not None]
            # Seeds that never reach the target count as beyond the budget for the median.
            median = statistics.median([n if n is not None else math.inf for n in per_seed])
            print(f"| {name} | {on_mean if on_mean is not None else f'> {trials}'} | "
                  f"{median if median != math.inf else f'> {trials}'} ({len(reached)} of {len(runs)}) |")
    print(f"\n{len(cache.scores)} distinct subnets scored (cache {cache.path}); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
