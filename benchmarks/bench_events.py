"""The supernet on event-camera data: input shape, token grid, size and training step time.

For each event data set, with the search space and recipe it trains with by default
(`nas.space.default_space`, `nas.recipes.default_recipe`), builds the supernet for that data
set's frames and times training steps of its largest subnet at T = the space's largest T:
forward on a batch of frame sequences ``[B, F, 2, H, W]``, cross-entropy, backward and an
AdamW step, as `train_supernet` runs them. The frames are synthetic event counts (Poisson,
0.1 events per pixel, polarity and frame) of the shape the data set's loader gives after our
centre crop: no data set is read, so the figures hold for the real files too (a step's cost
does not depend on the counts, only the spikes the network makes from them, which change
with training). The table gives the median of --repeats steps after one warm-up step.

    python benchmarks/bench_events.py [--batch 8] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import interleaved_medians
from torch import nn

from models import SpikformerSupernet, count_params
from nas.dataspec import EVENT_DATASETS
from nas.recipes import default_recipe
from nas.space import default_space, load_space

SENSOR = {"n-mnist": (32, 10), "cifar10-dvs": (128, 10), "dvs128-gesture": (128, 11)}
"""Frame side after the centre crop to a multiple of 8 (N-MNIST's 34 -> 32) and class count."""


def step_seconds(name: str, batch: int, repeats: int, device: torch.device) -> dict[str, object]:
    side, classes = SENSOR[name]
    space = load_space(default_space(name))
    frames = max(space.genes["time_steps"])
    cfg = space.supernet_config(in_channels=2, img_size=side, num_classes=classes, event_input=True)
    torch.manual_seed(0)
    net = SpikformerSupernet(cfg).to(device).train()
    largest = cfg.largest_subnet()
    net.set_subnet(largest)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.poisson(torch.full((batch, frames, 2, side, side), 0.1)).to(device)
    y = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    seconds = interleaved_medians({"step": step}, repeats)["step"]
    grid = side // cfg.patch_size
    return {"name": name, "space": space.name, "recipe": default_recipe(name), "frames": frames,
            "step_shape": f"2 x {side} x {side}", "grid": f"{grid} x {grid}",
            "largest": f"{largest.depth}-{largest.embed_dim}, {largest.num_heads[0]} heads",
            "params": count_params(cfg, largest), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--datasets", nargs="+", default=list(EVENT_DATASETS), choices=EVENT_DATASETS)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = [step_seconds(name, args.batch, args.repeats, device) for name in args.datasets]
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print(f"device: {where}; torch {torch.__version__}; batch {args.batch}, median of {args.repeats} steps")
    print()
    print("| data set | space (recipe) | input per step | frames = T | token grid | largest subnet | parameters "
          "| s per training step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['space']} ({r['recipe']}) | {r['step_shape']} | {r['frames']} | {r['grid']} | "
              f"{r['largest']} | {r['params']:,} | {r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
