"""Training and evaluation throughput of the supernet against spikingjelly's Spikformer.

One training step is what `train_supernet` does per batch: forward, cross-entropy loss,
backward and an AdamW step, on CIFAR-shaped synthetic data (3x32x32, --batch images, 10
classes), under `nas.precision.autocast`. Models, at T=4:

- ``ours, largest``: our supernet for the `paper` space running its largest subnet
  (Spikformer-4-384, 12 heads, MLP ratio 4);
- ``spikingjelly``: spikingjelly's built-in `Spikformer` of the same size (reset after
  every step, as it needs). Its patch stem max-pools a stage's BN output before the stage's
  neuron fires, so its neurons in the pooled stages see a quarter of the positions;
- ``spikingjelly, paper order``: the same model, its pooled stages rebuilt in the paper's
  order (conv, BN, LIF, then max-pool), which is the order of our stem. This is the model
  that does the same work as ours, and the reference of the speed target;
- ``ours, half-MAC``: the paper-space subnet nearest to half the largest's dense MACs.

Every (model, precision) pair is timed --repeats times, interleaved round-robin, and each
timed step directly follows an untimed one of the same pair (`schedule`), as in a training
loop, where no step follows another model's or precision's.

Memory is allocated as in a user's training run, with the C library's default settings. With
glibc these map each large tensor afresh and return it on free, so a step page-faults its
activations in again, and how many faults it takes depends on what was freed before it: the
table's last column counts them, the cause of most of the round-to-round spread on a CPU.

The table gives the median images/s of training steps and of evaluation forwards
(eval mode, no gradients), and the ratio of our time per step to spikingjelly's at the same
size and precision: against the paper-order model (target <= 1.05) and against the built-in
one. Peak memory of the first training step of the largest subnet at the batch size is
measured first, apart, in a fresh model (CUDA: `torch.cuda.max_memory_allocated` less the
memory allocated before the step; CPU: the peak RSS of a fresh process, less its peak before
the step); per image, it gives the batch sizes
that fit a 24 GB and an 80 GB card besides what the model held before the step.

    python benchmarks/bench_train.py [--device cpu|cuda] [--batch 64] [--repeats 5]
        [--precisions fp32 bf16] [--tf32 off|on]

--tf32 sets one TF32 policy for matrix products and cuDNN convolutions (default off: full
fp32 everywhere; by default cuDNN would run spikingjelly's 1x1 Conv1d layers in TF32 and
our linear layers would not); the header prints it and the neuron implementation that ran.

On 2 CPU cores a round (eight training and eight evaluation runs, each stepped twice) takes about
five minutes at batch 64; use --batch 16 --repeats 3 for a quick look.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable

import torch
from spikingjelly.activation_based import functional, layer
from spikingjelly.activation_based.model import spikformer as sj_spikformer
from timing import timed
from torch import nn

from energy import dense_macs
from models import SpikformerSupernet, SubnetConfig, SupernetConfig
from nas import load_space
from nas.precision import autocast, check_precision

TIME_STEPS = 4
REFERENCE = "spikingjelly, paper order"
CARDS_GB = (24, 80)


def set_tf32(enabled: bool) -> str:
    """Set one TF32 policy for matrix products and cuDNN convolutions alike; describe it."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return (f"TF32 {'on' if enabled else 'off'} for both matmul and cuDNN "
            f"(torch.backends.cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
            f"torch.backends.cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}; applies on CUDA)")


def lif_implementation(device: torch.device) -> str:
    """Which implementation ran spikingjelly's fused multi-step LIF on `device` (after a forward)."""
    requested = os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION", "auto")
    if device.type != "cuda":
        return "spikingjelly fused LIF operator (CPU: its Torch implementation)"
    try:
        from spikingjelly._ops import lif as sj_lif_ops

        chosen = sj_lif_ops._selection._selections.get(device.index or 0)
        name = getattr(chosen, "name", None) or "not selected yet"
    except (ImportError, AttributeError):
        name = "unknown (spikingjelly's selection is not readable)"
    return f"spikingjelly fused LIF operator on CUDA: {name} (SJ_LIF_CUDA_IMPLEMENTATION={requested})"


def paper_models(device: torch.device) -> tuple[SupernetConfig, SubnetConfig, SubnetConfig]:
    """The paper space's supernet (at T=4), its largest subnet and the half-MAC subnet."""
    space = load_space("paper")
    supernet_cfg = dataclasses.replace(space.supernet_config(in_channels=3, img_size=32, num_classes=10),
                                       time_steps=TIME_STEPS)
    largest = dataclasses.replace(space.largest(), time_steps=TIME_STEPS)
    target = dense_macs(supernet_cfg, largest).total / 2
    best: tuple[float, SubnetConfig] | None = None
    genes = space.genes
    for depth in genes["depth"]:
        for dim in genes["embed_dim"]:
            for ratio in genes["mlp_ratio"]:
                cfg = SubnetConfig.uniform(depth=depth, embed_dim=dim, num_heads=max(genes["num_heads"]),
                                           mlp_ratio=ratio, time_steps=TIME_STEPS)
                gap = abs(dense_macs(supernet_cfg, cfg).total - target)
                if best is None or gap < best[0]:
                    best = (gap, cfg)
    return supernet_cfg, largest, best[1]


def spikingjelly_spikformer(supernet_cfg: SupernetConfig, *, paper_order: bool = False,
                            time_steps: int = TIME_STEPS) -> nn.Module:
    """spikingjelly's built-in Spikformer at the supernet's largest size.

    With `paper_order`, each pooled stem stage fires its neuron before the max-pool (the
    paper's conv-BN-LIF-pool, and ours) instead of pooling the BN output first; the layers
    and their weights stay the same.
    """
    model = sj_spikformer.Spikformer(
        T=time_steps, in_channels=supernet_cfg.in_channels, img_size_h=supernet_cfg.img_size,
        img_size_w=supernet_cfg.img_size, patch_size=supernet_cfg.patch_size, num_classes=supernet_cfg.num_classes,
        embed_dims=supernet_cfg.max_embed_dim, num_heads=supernet_cfg.max_num_heads,
        mlp_ratio=supernet_cfg.max_mlp_ratio, depths=supernet_cfg.max_depth)
    if paper_order:
        for stage in model.patch_embed.stages:
            *conv_bn, last = stage.conv_bn.block
            if isinstance(last, nn.MaxPool2d):
                stage.conv_bn.block = layer.SeqToANNContainer(*conv_bn)
                stage.neuron = nn.Sequential(stage.neuron, layer.SeqToANNContainer(last))
    return model


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               device: torch.device, precision: str, reset: bool) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        out = model(x)
        # spikingjelly's Spikformer returns one output per time step; ours averages them itself.
        loss = nn.functional.cross_entropy(out.mean(0) if out.ndim == 3 else out, y)
    loss.backward()
    optimizer.step()
    if reset:
        functional.reset_net(model)


@torch.no_grad()
def eval_step(model: nn.Module, x: torch.Tensor, device: torch.device, precision: str, reset: bool) -> None:
    with autocast(device, precision):
        model(x)
    if reset:
        functional.reset_net(model)


def schedule(keys: list, repeats: int) -> list[tuple[object, bool]]:
    """The order of the runs: `repeats` round-robin rounds over `keys`, each key stepped twice,
    untimed then timed (pairs ``(key, timed)``)."""
    return [(key, is_timed) for _ in range(repeats) for key in keys for is_timed in (False, True)]


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec; ru_maxrss
    (the fallback elsewhere) keeps the parent's peak in a child."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(device: torch.device, batch: int, precision: str) -> dict[str, float]:
    """Peak memory of one training step of the largest subnet at `batch` (run in a fresh process on CPU)."""
    supernet_cfg, largest, _ = paper_models(device)
    torch.manual_seed(0)
    net = SpikformerSupernet(supernet_cfg).to(device)
    net.set_subnet(largest)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    # Measured from before the first step, so the peak includes AdamW's state (2 x 4 bytes per parameter).
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        train_step(net, optimizer, x, y, device, precision, reset=False)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        before = peak_rss_mb()
        train_step(net, optimizer, x, y, device, precision, reset=False)
        peak = peak_rss_mb()
    return {"before_mb": before, "peak_mb": peak}


def _probe(device: torch.device, batch: int, precision: str) -> dict[str, float]:
    if device.type == "cuda":
        probe = memory_probe(device, batch, precision)
        torch.cuda.empty_cache()
        return probe
    out = subprocess.run([sys.executable, __file__, "--device", "cpu", "--batch", str(batch),
                          "--memory-probe", precision], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--tf32", choices=["off", "on"], default="off",
                        help="TF32 policy for matmul and cuDNN alike, on CUDA (default: off)")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # child process of the CPU probe
    args = parser.parse_args()
    device = torch.device(args.device)
    tf32 = set_tf32(args.tf32 == "on")
    if args.memory_probe:
        print(json.dumps(memory_probe(device, args.batch, args.memory_probe)))
        return
    precisions = [check_precision(p, device) for p in args.precisions]
    # Memory first, each probe on its own: the timed models below would share the memory.
    probes = {precision: _probe(device, args.batch, precision) for precision in precisions}
    supernet_cfg, largest, half = paper_models(device)
    torch.manual_seed(0)
    ours = SpikformerSupernet(supernet_cfg).to(device)
    theirs = spikingjelly_spikformer(supernet_cfg).to(device)
    theirs_paper = spikingjelly_spikformer(supernet_cfg, paper_order=True).to(device)
    models = {"ours, largest": (ours, largest), REFERENCE: (theirs_paper, None), "spikingjelly": (theirs, None),
              "ours, half-MAC": (ours, half)}
    optimizers = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (ours, theirs, theirs_paper)}
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    runs: dict[tuple[str, str, str], Callable[[], None]] = {}
    for precision in precisions:
        for name, (model, subnet) in models.items():
            reset = subnet is None

            def prepare(model=model, subnet=subnet, train=True) -> None:
                if subnet is not None:
                    model.set_subnet(subnet)
                model.train(train)

            def train(model=model, prepare=prepare, precision=precision, reset=reset) -> None:
                prepare()
                train_step(model, optimizers[id(model)], x, y, device, precision, reset)

            def evaluate(model=model, prepare=prepare, precision=precision, reset=reset) -> None:
                prepare(train=False)
                eval_step(model, x, device, precision, reset)

            runs[(name, precision, "train")] = train
            runs[(name, precision, "eval")] = evaluate
    times: dict[tuple[str, str, str], list[float]] = {key: [] for key in runs}
    faults: dict[tuple[str, str, str], list[int]] = {key: [] for key in runs}
    order = schedule(list(runs), args.repeats)
    for i, (key, measure) in enumerate(order, 1):
        if measure:
            start = minor_faults()
            times[key].append(timed(runs[key]))
            faults[key].append(minor_faults() - start)
        else:
            runs[key]()
        if i % (2 * len(runs)) == 0:
            print(f"round {i // (2 * len(runs))}/{args.repeats} done", file=sys.stderr, flush=True)
    median = {key: statistics.median(v) for key, v in times.items()}
    median_faults = {key: statistics.median(v) for key, v in faults.items()}

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    macs_l, macs_h = (dense_macs(supernet_cfg, c).total for c in (largest, half))
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch} of 3x32x32, T={TIME_STEPS}, "
          f"{args.repeats} interleaved repeats (median), each timed step after an untimed one")
    print(f"{tf32}; neurons: {lif_implementation(device)}")
    print(f"largest: Spikformer-{largest.depth}-{largest.embed_dim}, {macs_l / 1e6:.0f} M dense MACs per image; "
          f"half-MAC: depth {half.depth}, width {half.embed_dim}, MLP ratio {half.mlp_ratio[0]}, "
          f"{macs_h / 1e6:.0f} M ({macs_h / macs_l:.2f})")
    print()
    print("| model | precision | train images/s | eval images/s | train s/step vs spikingjelly, paper order "
          "(target <= 1.05) | vs spikingjelly built-in | minor page faults per train step |")
    print("|---|---|---|---|---|---|---|")
    for precision in precisions:
        for model_name in models:
            train_s, eval_s = median[(model_name, precision, "train")], median[(model_name, precision, "eval")]
            ratios = ["", ""]
            if model_name == "ours, largest":
                ratios = [f"{train_s / median[(ref, precision, 'train')]:.3f}" for ref in (REFERENCE, "spikingjelly")]
            print(f"| {model_name} | {precision} | {args.batch / train_s:.1f} | {args.batch / eval_s:.1f} | "
                  f"{ratios[0]} | {ratios[1]} | {median_faults[(model_name, precision, 'train')]:,.0f} |")
    if "fp32" in precisions and len(precisions) > 1:
        print()
        for precision in precisions:
            if precision != "fp32":
                speedup = median[("ours, largest", "fp32", "train")] / median[("ours, largest", precision, "train")]
                print(f"{precision} / fp32 training throughput, ours largest: {speedup:.2f}x "
                      "(target >= 1.5 on a CUDA GPU)")

    print()
    print(f"peak memory of one training step, ours largest, batch {args.batch}:")
    print("| precision | before the step MB | peak MB | per image MB | batch for 24 GB | batch for 80 GB |")
    print("|---|---|---|---|---|---|")
    for precision, probe in probes.items():
        per_image = (probe["peak_mb"] - probe["before_mb"]) / args.batch
        fits = [int((gb * 1024 - probe["before_mb"]) / per_image) if per_image > 0 else 0 for gb in CARDS_GB]
        print(f"| {precision} | {probe['before_mb']:.0f} | {probe['peak_mb']:.0f} | {per_image:.1f} | "
              f"{fits[0]} | {fits[1]} |")
    if device.type != "cuda":
        print("(CPU: peak RSS of a fresh process. On a GPU this script measures allocated GPU memory instead; "
              "until then the card batch sizes are an extrapolation from CPU memory)")


if __name__ == "__main__":
    main()
