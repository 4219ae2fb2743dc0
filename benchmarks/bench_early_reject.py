"""Early rejection on digits: evaluation work saved, hypervolume at equal wall time, and a proof.

Digits is re-split so that the validation split holds 891 images (val_fraction 0.62 of the
1,437 non-test images; 546 are left for training), and a supernet is trained on that
split once (about a minute; kept at --checkpoint). Our sampler then runs the two-objective
(accuracy, energy) study with the same seeds in each mode:

- ``full``: every subnet scored on all 891 images;
- ``certain``: early rejection on the bounds that hold with certainty (the default rule);
- ``statistical``: early rejection with the hypergeometric accuracy bound at --confidence.

Images are scored in batches of --batch-size; rejection is checked after each batch from
--min-images on. A run stops after --trials trials, complete or rejected. Each run has a
fresh evaluator (no scores carried over), so its wall time is its own.

Hypervolume is computed as in bench_search: moocore on (1 - accuracy, energy_mj) against
(0.2, E_ref), as a fraction of that box, with E_ref the largest subnet's energy. "HV at
equal time" compares, per seed, every mode at the wall time at which the fastest mode
finished its trial budget (only trials complete by then count).

The proof: every rejected subnet is evaluated in full afterwards, and the table counts
those that would have been on the final front of their own run, and on the front of the
union of all complete results of every run (the same architecture's other copies left out).
For ``certain`` both counts are 0 by construction; for ``statistical`` they may not be.

    python benchmarks/bench_early_reject.py [--checkpoint autospk-runs/digits-val891-supernet.pt]
        [--seeds 3] [--trials 150] [--population-size 20] [--batch-size 50] [--min-images 100]
        [--confidence 0.99] [--modes full certain statistical]

Wall times are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from bench_search import hypervolume
from optuna.trial import TrialState

from energy import analytic_energy
from models import SubnetConfig
from nas import (
    AEBSettings,
    DatasetSpec,
    EvaluationSettings,
    SamplerSettings,
    SpikformerNSGAIISampler,
    SubnetEvaluator,
    SubnetObjective,
    load_checkpoint,
    load_dataset,
    load_space,
)
from nas.rejection import pareto_rule

SPEC = DatasetSpec("digits", val_fraction=0.62)
MODES = ("full", "certain", "statistical")


@dataclass
class Run:
    """One search: per trial, its state, arch, (accuracy, energy) if complete, images and finish time;
    the configs of the rejected subnets and, after `prove`, their full scores."""

    mode: str
    seed: int
    states: list[TrialState] = field(default_factory=list)
    archs: list[str] = field(default_factory=list)
    points: list[tuple[float, float] | None] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    rejected_configs: list[SubnetConfig] = field(default_factory=list)
    rejected_points: dict[str, tuple[float, float]] = field(default_factory=dict)

    def complete_points(self, until: float = float("inf")) -> np.ndarray:
        rows = [(1 - p[0], p[1]) for p, t in zip(self.points, self.finished) if p is not None and t <= until]
        return np.array(rows).reshape(-1, 2)


def settings_of(mode: str, args: argparse.Namespace) -> EvaluationSettings:
    if mode == "full":
        return EvaluationSettings(batch_size=args.batch_size)
    return EvaluationSettings(batch_size=args.batch_size, early_rejection=True, rejection_min_images=args.min_images,
                              rejection_confidence=args.confidence if mode == "statistical" else None)


def search(mode: str, seed: int, args: argparse.Namespace, ckpt, net, data, e_ref: float) -> Run:
    space = ckpt.space
    evaluator = SubnetEvaluator(net, data.train_eval, data.val, settings=settings_of(mode, args))
    objective = SubnetObjective(space, evaluator, "pareto", AEBSettings(e_ref=e_ref))
    sampler = SpikformerNSGAIISampler(space, settings=SamplerSettings(population_size=args.population_size, seed=seed),
                                      cost=analytic_energy(ckpt.supernet_cfg))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.enqueue_trial(space.params_from_config(space.largest()))
    run = Run(mode, seed)
    start = time.perf_counter()

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run.finished.append(time.perf_counter() - start)
        run.states.append(trial.state)
        run.archs.append(trial.user_attrs["arch_id"])
        run.images.append(trial.user_attrs["eval_images_scored"])
        run.points.append(tuple(trial.values) if trial.state == TrialState.COMPLETE else None)
        if trial.state == TrialState.PRUNED:
            run.rejected_configs.append(space.config_from_params(trial.params))

    study.optimize(objective, n_trials=args.trials, callbacks=[record])
    return run


def prove(runs: list[Run], args: argparse.Namespace, net, data) -> None:
    """Score every rejected subnet in full, with its run's settings but nothing to reject it."""
    for run in runs:
        if run.mode == "full":
            continue
        evaluator = SubnetEvaluator(net, data.train_eval, data.val, settings=settings_of(run.mode, args))
        for config in run.rejected_configs:
            score = evaluator(config)
            run.rejected_points[config.arch_id] = (score.accuracy, score.energy.energy_mj)


def on_front(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    return not pareto_rule(others)(*point) if others else True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="autospk-runs/digits-val891-supernet.pt")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=150, help="trials per run, complete or rejected")
    parser.add_argument("--population-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50, help="images per batch: rejection checks after each")
    parser.add_argument("--min-images", type=int, default=100, help="images scored before the first check")
    parser.add_argument("--confidence", type=float, default=0.99, help="level of the statistical mode")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    path = Path(args.checkpoint)
    if not path.exists():
        from nas.recipes import get_recipe
        from nas.train import train_supernet

        print(f"training the digits supernet on the re-split data -> {path}", flush=True)
        train_supernet(load_space("digits"), SPEC, get_recipe("digits").with_rule("uniform"), path, progress=False)
    ckpt = load_checkpoint(path)
    if ckpt.dataset != SPEC:
        raise SystemExit(f"{path} was trained on {ckpt.dataset}, not on {SPEC}; give another --checkpoint")
    data = load_dataset(SPEC)
    net = ckpt.build_supernet()
    space = ckpt.space
    largest = SubnetEvaluator(net, data.train_eval, data.val, settings=settings_of("full", args))(space.largest())
    e_ref = largest.energy.energy_mj

    runs: list[Run] = []
    for seed in range(args.seeds):
        for mode in args.modes:
            run = search(mode, seed, args, ckpt, net, data, e_ref)
            runs.append(run)
            rejected = run.states.count(TrialState.PRUNED)
            print(f"seed {seed} {mode}: {run.finished[-1]:.0f} s, {rejected} rejected", flush=True)
    prove_start = time.perf_counter()
    prove(runs, args, net, data)

    ref = np.array([0.2, e_ref])
    union = {(run.seed, run.mode, arch): p for run in runs for arch, p in zip(run.archs, run.points) if p is not None}
    print()
    print(f"digits re-split: {len(data.train)} train / {len(data.val)} val images; space '{space.name}', "
          f"{args.seeds} seeds x {args.trials} trials, population {args.population_size}; batches of "
          f"{args.batch_size} images, checks from {args.min_images} on; statistical level {args.confidence}; "
          f"E_ref {e_ref:.6f} mJ")
    print("HV: (1 - accuracy, energy) vs (0.2, E_ref), fraction of the box; 'at equal time': at the wall time at "
          "which the fastest mode of the seed finished its trials")
    print()
    print("| mode | images scored per trial (mean) | wall time s (mean) | rejected (mean) | HV at equal time "
          "(mean ± sd) | HV at the end (mean) | rejected on own run's final front | rejected on union front |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        mine = [r for r in runs if r.mode == mode]
        at_equal, at_end = [], []
        on_own = on_union = 0
        for run in mine:
            fastest = min(r.finished[-1] for r in runs if r.seed == run.seed)
            at_equal.append(hypervolume(run.complete_points(fastest), ref))
            at_end.append(hypervolume(run.complete_points(), ref))
            own = [p for p in run.points if p is not None]
            for arch, point in run.rejected_points.items():
                on_own += on_front(point, own)
                others = [p for (_, _, a), p in union.items() if a != arch]
                on_union += on_front(point, others)
        images = statistics.mean(i for r in mine for i in r.images)
        print(f"| {mode} | {images:.0f} of {len(data.val)} | {statistics.mean(r.finished[-1] for r in mine):.0f} | "
              f"{statistics.mean(r.states.count(TrialState.PRUNED) for r in mine):.1f} | "
              f"{statistics.mean(at_equal):.4f} ± {statistics.pstdev(at_equal):.4f} | {statistics.mean(at_end):.4f} | "
              f"{on_own if mode != 'full' else '-'} | {on_union if mode != 'full' else '-'} |")
    print(f"\nproof: {sum(len(r.rejected_points) for r in runs)} rejected subnets scored in full in "
          f"{time.perf_counter() - prove_start:.0f} s")


if __name__ == "__main__":
    main()
