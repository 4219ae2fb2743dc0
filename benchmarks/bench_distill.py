"""Which supernet training rule serves both ends of the space: uniform, sandwich, distill.

For each seed, trains the `digits` space's supernet on digits three times with the same
recipe, epochs and seed, changing only the rule:

- ``uniform``: one random subnet per step;
- ``sandwich``: the largest, the smallest and a random subnet per step, gradients summed;
- ``distill``: the sandwich with in-place distillation (the largest learns from the labels,
  the smallest and the random one from the largest's soft outputs, in the same step).

Each trained supernet then scores, as the search does (BN recalibrated per subnet, the
validation split): the largest subnet, the smallest, and 20 random subnets drawn once
(seed 1234, the same 20 for every rule and seed), whose median is reported. The training
runs are interleaved by seed (all three rules for seed 0, then seed 1 ...). A sandwich step
runs three subnets, so it costs about three uniform steps; the table gives the training
time too.

    python benchmarks/bench_distill.py [--seeds 0 1 2] [--epochs 30] [--subnets 20]

About 20 minutes per seed on one core with the digits recipe's 30 epochs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nas import DatasetSpec, SubnetEvaluator, load_dataset, load_space
from nas.recipes import RULES, get_recipe
from nas.train import train_supernet

SUBNET_SEED = 1234


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the digits recipe's")
    parser.add_argument("--subnets", type=int, default=20, help="random subnets whose median accuracy is reported")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = load_space("digits")
    dataset = DatasetSpec("digits")
    data = load_dataset(dataset)
    recipe = get_recipe("digits").replace(epochs=args.epochs)
    rng = random.Random(SUBNET_SEED)
    subnets = [space.sample(rng) for _ in range(args.subnets)]
    results: dict[str, list[dict[str, float]]] = {rule: [] for rule in args.rules}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for rule in args.rules:
                start = time.perf_counter()
                net = train_supernet(space, dataset, recipe.with_rule(rule), Path(tmp) / f"{rule}-{seed}.pt",
                                     seed=seed, device="cpu", progress=False, data=data, eval_every=0)
                seconds = time.perf_counter() - start
                evaluator = SubnetEvaluator(net, data.train_eval, data.val, device="cpu")
                row = {"largest": evaluator(space.largest()).accuracy,
                       "smallest": evaluator(space.smallest()).accuracy,
                       "median": statistics.median(evaluator(c).accuracy for c in subnets),
                       "seconds": seconds}
                results[rule].append(row)
                print(f"seed {seed} {rule:8s}: largest {row['largest']:.2%}, smallest {row['smallest']:.2%}, "
                      f"median of {len(subnets)} {row['median']:.2%} ({seconds:.0f} s training)", flush=True)

    print()
    print(f"digits space on digits, recipe 'digits' ({recipe.epochs} epochs), seeds "
          f"{', '.join(map(str, args.seeds))}; validation accuracy ({len(data.val)} images), BN recalibrated per "
          f"subnet; mean over seeds (min - max)")
    print()
    print(f"| rule | largest | smallest | median of {len(subnets)} random | training s |")
    print("|---|---|---|---|---|")
    for rule, rows in results.items():
        cells = []
        for key in ("largest", "smallest", "median"):
            values = [r[key] for r in rows]
            cells.append(f"{statistics.mean(values):.2%} ({min(values):.2%} - {max(values):.2%})")
        print(f"| {rule} | {' | '.join(cells)} | {statistics.mean(r['seconds'] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
