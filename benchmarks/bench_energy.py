"""Overhead of measuring energy during an evaluation pass.

Times, interleaved, the same no-grad evaluation pass over several batches with and
without an `EnergyMonitor` attached, and prints the medians and the overhead
(target <= 10%).

    python benchmarks/bench_energy.py [--batches 4] [--batch 64] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch
from timing import interleaved_medians

from energy import EnergyMonitor
from models import SpikformerSupernet, SupernetConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    supernet_cfg = SupernetConfig(max_depth=2, max_embed_dim=128, max_num_heads=8, time_steps=4)
    net = SpikformerSupernet(supernet_cfg).to(device)
    data = [torch.rand(args.batch, 3, 32, 32, device=device) for _ in range(args.batches)]
    with torch.no_grad():  # BN statistics that make neurons fire
        for x in data:
            net(x)
    net.eval()

    def plain() -> None:
        with torch.no_grad():
            for x in data:
                net(x)

    def measured() -> None:
        with torch.no_grad(), EnergyMonitor(net) as monitor:
            for x in data:
                net(x)
        monitor.report()

    med = interleaved_medians({"plain": plain, "measured": measured}, args.repeats)
    print(f"device={device} Spikformer-2-128 32x32 T=4, {args.batches} batches of {args.batch}, "
          f"repeats={args.repeats}")
    print()
    print("| pass | median s |")
    print("|---|---|")
    print(f"| evaluation | {med['plain']:.4f} |")
    print(f"| evaluation + energy monitor | {med['measured']:.4f} |")
    print()
    print(f"overhead = {100 * (med['measured'] / med['plain'] - 1):+.1f}%  (target <= 10%)")


if __name__ == "__main__":
    main()
