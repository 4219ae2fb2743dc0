"""Search quality on the digits supernet: our sampler against Optuna's.

Each sampler runs the two-objective (accuracy, energy) study on the same trained digits
supernet for several seeds. Ours runs twice: as shipped (each proposal the most promising
of --candidates children, screened by a surrogate fitted on the finished trials) and with
screening off (candidates=1, plain NSGA-II with a cost-stratified first generation).
Evaluations are deterministic (fixed BN-recalibration batches), so one cache of scores by
arch id serves every run in this process.

Hypervolume is computed with moocore on the points (1 - accuracy, energy_mj), both
minimised, against the reference point (0.2, E_ref): subnets at least 80% accurate and no
costlier than the largest subnet. It is reported as a fraction of the reference box. A
duplicate is a trial whose architecture an earlier trial of the same study already had: a
wasted evaluation budget.

Scores are kept in a JSON cache (--cache) keyed by arch id, so a rerun only evaluates
architectures it has not seen.

    python benchmarks/bench_search.py [--checkpoint autospk-runs/digits-supernet.pt]
        [--seeds 5] [--trials 200] [--population-size 20] [--candidates 4] [--samplers ...]

Trains the digits supernet first (about 2 minutes) when the checkpoint is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import moocore
import numpy as np
import optuna

from energy import analytic_energy
from nas import (
    DatasetSpec,
    SamplerSettings,
    SpikformerNSGAIISampler,
    SubnetEvaluator,
    load_checkpoint,
    load_dataset,
    load_space,
)

CHECKPOINTS = (50, 100, 200)


def make_samplers(space, supernet_cfg, population: int, seed: int,
                  candidates: int) -> dict[str, optuna.samplers.BaseSampler]:
    cost = analytic_energy(supernet_cfg)

    def ours(k: int) -> SpikformerNSGAIISampler:
        # num_parents follows the population (SamplerSettings derives it).
        settings = SamplerSettings(population_size=population, candidates=k, seed=seed)
        return SpikformerNSGAIISampler(space, settings=settings, cost=cost)

    return {
        "autospk NSGA-II": ours(candidates),
        "autospk NSGA-II, no screening": ours(1),
        "optuna NSGAIISampler": optuna.samplers.NSGAIISampler(population_size=population, seed=seed),
        "optuna TPESampler": optuna.samplers.TPESampler(seed=seed),
        "optuna RandomSampler": optuna.samplers.RandomSampler(seed=seed),
    }


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume as a fraction of the box between the origin and `ref`."""
    inside = points[(points < ref).all(axis=1)]
    return float(moocore.hypervolume(inside, ref=ref)) / float(np.prod(ref)) if len(inside) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="autospk-runs/digits-supernet.pt")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--population-size", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=SamplerSettings().candidates,
                        help="children screened per proposal by our sampler (its default)")
    parser.add_argument("--cache", default="autospk-runs/bench_search_cache.json")
    parser.add_argument("--samplers", nargs="*", default=None, help="subset of sampler names to run")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    path = Path(args.checkpoint)
    if not path.exists():
        from nas.recipes import get_recipe
        from nas.train import train_supernet

        print(f"training the digits supernet -> {path}")
        train_supernet(load_space("digits"), DatasetSpec("digits"), get_recipe("digits"), path, progress=False)
    ckpt = load_checkpoint(path)
    space = ckpt.space
    data = load_dataset(ckpt.dataset)
    evaluator = SubnetEvaluator(ckpt.build_supernet(), data.train_eval, data.val)
    cache_path = Path(args.cache)
    cache: dict[str, list[float]] = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def score(cfg) -> list[float]:
        if cfg.arch_id not in cache:
            s = evaluator(cfg)
            cache[cfg.arch_id] = [s.accuracy, s.energy.energy_mj]
        return cache[cfg.arch_id]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        cfg = space.suggest(trial)
        trial.set_user_attr("arch_id", cfg.arch_id)
        accuracy, energy = score(cfg)
        return accuracy, energy

    e_ref = score(space.largest())[1]

    runs: dict[str, list[tuple[np.ndarray, list[str]]]] = {}
    start = time.perf_counter()
    for seed in range(args.seeds):
        samplers = make_samplers(space, ckpt.supernet_cfg, args.population_size, seed, args.candidates)
        for name, sampler in samplers.items():
            if args.samplers and not any(k in name for k in args.samplers):
                continue
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
            study.optimize(objective, n_trials=args.trials)
            trials = study.trials
            points = np.array([[1 - t.values[0], t.values[1]] for t in trials])
            runs.setdefault(name, []).append((points, [t.user_attrs["arch_id"] for t in trials]))
            print(f"seed {seed} {name}: done ({time.perf_counter() - start:.0f} s, "
                  f"{len(cache)} distinct subnets scored so far)", flush=True)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))

    ref = np.array([0.2, e_ref])
    budgets = [b for b in CHECKPOINTS if b <= args.trials] or [args.trials]
    print()
    print(f"digits supernet, space '{space.name}', {args.seeds} seeds, population {args.population_size}, "
          f"{args.candidates} candidates screened per proposal by ours; "
          f"E_ref (largest subnet) = {e_ref:.6f} mJ")
    print(f"hypervolume of (1 - accuracy, energy mJ), both minimised, as a fraction of the box up to the "
          f"reference point (0.2, E_ref = {ref[1]:.6f} mJ)")
    print()
    header = " | ".join(f"HV@{b} mean ± sd" for b in budgets)
    print(f"| sampler | {header} | duplicate trials (mean) |")
    print("|---|" + "---|" * len(budgets) + "---|")
    means: dict[str, dict[int, float]] = {}
    curves: dict[str, list[float]] = {}
    for name, results in runs.items():
        cells = []
        for b in budgets:
            values = [hypervolume(p[:b], ref) for p, _ in results]
            means.setdefault(name, {})[b] = statistics.mean(values)
            cells.append(f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}")
        curves[name] = [statistics.mean(hypervolume(p[:n], ref) for p, _ in results)
                        for n in range(10, args.trials + 1, 10)]
        dups = statistics.mean(len(ids) - len(set(ids)) for _, ids in results)
        print(f"| {name} | {' | '.join(cells)} | {dups:.1f} |")
    if "optuna RandomSampler" not in means:
        return
    target = means["optuna RandomSampler"][budgets[-1]]
    print()
    print(f"evaluations to reach Random's mean HV@{budgets[-1]} ({target:.4f}):")
    for name, curve in curves.items():
        reached = next((10 * (i + 1) for i, v in enumerate(curve) if v >= target), None)
        print(f"  {name}: {reached if reached is not None else f'not within {args.trials}'}")
    print(f"\n{len(cache)} distinct subnets scored (cache {cache_path}); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
