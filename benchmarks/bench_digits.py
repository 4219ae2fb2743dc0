"""Inherited-weight accuracy and evaluation speed on the digits supernet (CPU, or --device cuda).

Trains the digits supernet with the `digits` recipe (or loads --checkpoint when it
exists), then scores the largest subnet and random subnets of the `digits` space on the
validation split with BN recalibration, energy measured in the same pass.
Targets: training <= 3 minutes on 2 cores; largest subnet >= 95%; median of 20 random
subnets >= 93%; one evaluation (recalibration + val + energy) <= 0.5 s.

    python benchmarks/bench_digits.py [--checkpoint PATH] [--subnets 20] [--retrain] [--device cpu]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from nas import DatasetSpec, SubnetEvaluator, load_checkpoint, load_dataset, load_space
from nas.recipes import get_recipe
from nas.train import train_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="autospk-runs/digits-supernet.pt")
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--retrain", action="store_true", help="train even if the checkpoint exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda ...")
    args = parser.parse_args()
    path = Path(args.checkpoint)
    space, dataset = load_space("digits"), DatasetSpec("digits")
    data = load_dataset(dataset)
    train_seconds = None
    if args.retrain or not path.exists():
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        train_supernet(space, dataset, get_recipe("digits"), path, data=data, seed=args.seed, device=args.device,
                       progress=False)
        train_seconds = time.perf_counter() - start
    ckpt = load_checkpoint(path)
    net, space = ckpt.build_supernet(args.device), ckpt.space
    # Warm-up on a throwaway evaluator: first-call allocations are not an evaluation's cost.
    SubnetEvaluator(net, data.train_eval, data.val)(space.smallest())
    evaluator = SubnetEvaluator(net, data.train_eval, data.val)
    largest = evaluator(space.largest())
    rng = random.Random(args.seed)
    scores = [evaluator(space.sample(rng)) for _ in range(args.subnets)]
    accs = [s.accuracy for s in scores]
    secs = [s.seconds for s in scores]
    on_gpu = torch.device(args.device).type == "cuda"
    where = torch.cuda.get_device_name() if on_gpu else f"{torch.get_num_threads()} CPU threads"
    print(f"digits, {len(data.train)} train / {len(data.val)} val images, torch {torch.__version__}, {where}")
    print()
    print("| figure | value | target |")
    print("|---|---|---|")
    if train_seconds is not None:
        print(f"| supernet training ({get_recipe('digits').epochs} epochs) | {train_seconds:.0f} s | <= 180 s |")
    print(f"| largest subnet val accuracy | {100 * largest.accuracy:.2f}% | >= 95% |")
    print(f"| median val accuracy, {args.subnets} random subnets | {100 * statistics.median(accs):.2f}% | >= 93% |")
    print(f"| min / max over those subnets | {100 * min(accs):.2f}% / {100 * max(accs):.2f}% | |")
    print(f"| one evaluation (recalibrate + val + energy), median | {statistics.median(secs):.3f} s | <= 0.5 s |")
    print(f"| one evaluation, slowest | {max(secs):.3f} s | |")
    print(f"| largest subnet energy | {largest.energy.energy_mj * 1e3:.3f} uJ/image | |")


if __name__ == "__main__":
    main()
