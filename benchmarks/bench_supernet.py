"""Forward+backward speed of the supernet against spikingjelly's fixed Spikformer.

Runs, interleaved, on CPU (or --device cuda):
  (a) our supernet at a Spikformer-4-256 maximum, running its largest subnet;
  (b) spikingjelly's `spikformer.Spikformer` of the same depth, width, heads, MLP ratio,
      T and token count, its pooled stem stages in the paper's order (LIF, then max-pool,
      as ours: `bench_train.spikingjelly_spikformer`), the reference of the target;
  (b0) the same spikingjelly model as built in (it max-pools before those neurons fire);
  (c) our supernet running a subnet with about half the dense MACs of (a).
Each model takes 3 untimed warm-up steps first. Prints the median seconds per step and the
ratios a/b (target <= 1.05) and c/a (target <= 0.6).

On CUDA, cuDNN runs convolutions (spikingjelly's 1x1 Conv1d layers among them) in TF32 by
default while matrix products (our linear layers) run in full fp32: --tf32 sets one policy
for both (default off: full fp32 everywhere), and the header prints it with the neuron
implementation that ran.

    python benchmarks/bench_supernet.py [--batch 32] [--repeats 7] [--device cpu] [--tf32 off|on]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from spikingjelly.activation_based import functional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import lif_implementation, set_tf32, spikingjelly_spikformer  # noqa: E402
from timing import interleaved_medians  # noqa: E402

from energy import dense_macs  # noqa: E402
from models import SpikformerSupernet, SubnetConfig, SupernetConfig  # noqa: E402

WARMUP_STEPS = 3


def half_mac_subnet(supernet_cfg: SupernetConfig) -> SubnetConfig:
    """The config nearest to half the largest subnet's dense MACs, from a small grid."""
    target = dense_macs(supernet_cfg, supernet_cfg.largest_subnet()).total / 2
    best = None
    for depth in range(1, supernet_cfg.max_depth + 1):
        for dim in range(64, supernet_cfg.max_embed_dim + 1, 32):
            for ratio in (2.0, 3.0, 4.0):
                cfg = SubnetConfig.uniform(depth=depth, embed_dim=dim, num_heads=8, mlp_ratio=ratio,
                                           time_steps=supernet_cfg.time_steps)
                gap = abs(dense_macs(supernet_cfg, cfg).total - target)
                if best is None or gap < best[0]:
                    best = (gap, cfg)
    return best[1]


def step(model: torch.nn.Module, x: torch.Tensor, reset: bool) -> None:
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    if reset:
        functional.reset_net(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tf32", choices=["off", "on"], default="off",
                        help="TF32 policy for matmul and cuDNN alike, on CUDA (default: off)")
    args = parser.parse_args()
    tf32 = set_tf32(args.tf32 == "on")
    torch.manual_seed(0)
    device = torch.device(args.device)

    supernet_cfg = SupernetConfig(in_channels=3, img_size=32, patch_size=4, num_classes=10, max_depth=4,
                                  max_embed_dim=256, max_num_heads=8, max_mlp_ratio=4.0, time_steps=4)
    ours = SpikformerSupernet(supernet_cfg).to(device)
    half = half_mac_subnet(supernet_cfg)
    theirs = spikingjelly_spikformer(supernet_cfg, paper_order=True, time_steps=4).to(device)
    builtin = spikingjelly_spikformer(supernet_cfg, time_steps=4).to(device)
    x = torch.rand(args.batch, 3, 32, 32, device=device)

    def run_a() -> None:
        ours.set_subnet(supernet_cfg.largest_subnet())
        step(ours, x, reset=False)

    def run_b() -> None:
        step(theirs, x, reset=True)

    def run_b0() -> None:
        step(builtin, x, reset=True)

    def run_c() -> None:
        ours.set_subnet(half)
        step(ours, x, reset=False)

    runs = {"a": run_a, "b": run_b, "b0": run_b0, "c": run_c}
    med = interleaved_medians(runs, args.repeats, warmup=WARMUP_STEPS)
    macs_a = dense_macs(supernet_cfg, supernet_cfg.largest_subnet()).total
    macs_c = dense_macs(supernet_cfg, half).total
    print(f"device={device} batch={args.batch} 32x32 T=4 repeats={args.repeats} torch={torch.__version__}")
    print(f"{tf32}; neurons: {lif_implementation(device)}")
    print(f"(c) subnet: depth={half.depth} embed_dim={half.embed_dim} mlp_ratio={half.mlp_ratio[0]} "
          f"dense MACs {macs_c / 1e6:.1f} M vs {macs_a / 1e6:.1f} M ({macs_c / macs_a:.2f})")
    print()
    print("| run | model | median s/step |")
    print("|---|---|---|")
    print(f"| a | autospk supernet, largest subnet (4-256) | {med['a']:.4f} |")
    print(f"| b | spikingjelly Spikformer 4-256, paper order | {med['b']:.4f} |")
    print(f"| b0 | spikingjelly Spikformer 4-256, built in | {med['b0']:.4f} |")
    print(f"| c | autospk supernet, ~half-MAC subnet | {med['c']:.4f} |")
    print()
    print(f"a/b = {med['a'] / med['b']:.3f}  (target <= 1.05; a/b0 = {med['a'] / med['b0']:.3f})")
    print(f"c/a = {med['c'] / med['a']:.3f}  (target <= 0.60)")


if __name__ == "__main__":
    main()
