"""Search quality on the digits supernet: our sampler against Optuna's.

Each sampler runs the two-objective (accuracy, energy) study on the same trained digits
supernet for several seeds. Evaluations are deterministic (fixed BN-recalibration
batches), so one cache of scores by arch id serves every run in this process.

Hypervolume is computed with moocore on the points (1 - accuracy, energy_mj), both
minimised, against the reference point (1.0, 1.05 x the largest energy any run saw),
printed with the table. A duplicate is a trial whose architecture an earlier trial of the
same study already had: a wasted evaluation budget.

    python benchmarks/bench_search.py [--checkpoint autospk-runs/digits-supernet.pt]
        [--seeds 5] [--trials 200] [--population-size 20]

Trains the digits supernet first (about 2 minutes) when the checkpoint is missing.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import moocore
import numpy as np
import optuna

from energy import dense_macs
from nas import (
    AEBSettings,
    DatasetSpec,
    SpikformerNSGAIISampler,
    SubnetEvaluator,
    SubnetObjective,
    load_checkpoint,
    load_dataset,
    load_space,
    supernet_from_checkpoint,
)

CHECKPOINTS = (50, 100, 200)


def make_samplers(space, spec, population: int, seed: int) -> dict[str, optuna.samplers.BaseSampler]:
    def cost(cfg):
        return dense_macs(spec, cfg).energy_mj()

    return {
        "autospk NSGA-II": SpikformerNSGAIISampler(space, population_size=population,
                                                   num_parents=max(2, population // 5), seed=seed, cost=cost),
        "optuna NSGAIISampler": optuna.samplers.NSGAIISampler(population_size=population, seed=seed),
        "optuna TPESampler": optuna.samplers.TPESampler(seed=seed),
        "optuna RandomSampler": optuna.samplers.RandomSampler(seed=seed),
    }


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    inside = points[(points < ref).all(axis=1)]
    return float(moocore.hypervolume(inside, ref=ref)) if len(inside) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="autospk-runs/digits-supernet.pt")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--population-size", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    path = Path(args.checkpoint)
    if not path.exists():
        from nas.train import get_recipe, train_supernet

        print(f"training the digits supernet -> {path}")
        train_supernet(load_space("digits"), DatasetSpec("digits"), get_recipe("digits"), path, progress=False)
    net, space, dataset = supernet_from_checkpoint(load_checkpoint(path))
    data = load_dataset(dataset)
    evaluator = SubnetEvaluator(net, data.train_eval, data.val)
    e_ref = evaluator(space.largest()).energy.energy_mj
    objective = SubnetObjective(space, evaluator, "pareto", AEBSettings(e_ref=e_ref))

    runs: dict[str, list[tuple[np.ndarray, list[str]]]] = {}
    start = time.perf_counter()
    for seed in range(args.seeds):
        for name, sampler in make_samplers(space, net.supernet_config, args.population_size, seed).items():
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
            study.optimize(objective, n_trials=args.trials)
            trials = study.trials
            points = np.array([[1 - t.user_attrs["accuracy"], t.user_attrs["energy_mj"]] for t in trials])
            runs.setdefault(name, []).append((points, [t.user_attrs["arch_id"] for t in trials]))
            print(f"seed {seed} {name}: done ({time.perf_counter() - start:.0f} s, "
                  f"{len(evaluator._cache)} distinct subnets evaluated so far)", flush=True)

    ref = np.array([1.0, 1.05 * max(p[:, 1].max() for r in runs.values() for p, _ in r)])
    budgets = [b for b in CHECKPOINTS if b <= args.trials] or [args.trials]
    print()
    print(f"digits supernet, space '{space.name}', {args.seeds} seeds, population {args.population_size}; "
          f"E_ref (largest subnet) = {e_ref:.6f} mJ")
    print(f"hypervolume of (1 - accuracy, energy mJ), both minimised; reference point = "
          f"(1.0, {ref[1]:.6f} mJ)")
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
            cells.append(f"{statistics.mean(values):.5f} ± {statistics.pstdev(values):.5f}")
        curves[name] = [statistics.mean(hypervolume(p[:n], ref) for p, _ in results)
                        for n in range(10, args.trials + 1, 10)]
        dups = statistics.mean(len(ids) - len(set(ids)) for _, ids in results)
        print(f"| {name} | {' | '.join(cells)} | {dups:.1f} |")
    target = means["optuna RandomSampler"][budgets[-1]]
    print()
    print(f"evaluations to reach Random's mean HV@{budgets[-1]} ({target:.5f}):")
    for name, curve in curves.items():
        reached = next((10 * (i + 1) for i, v in enumerate(curve) if v >= target), None)
        print(f"  {name}: {reached if reached is not None else f'not within {args.trials}'}")
    print(f"\n{len(evaluator._cache)} distinct subnets evaluated in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
