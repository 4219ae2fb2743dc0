"""Operations dispatched per training step and per evaluation forward, ours against spikingjelly.

On a GPU a small Spikformer step is launch-bound: its time is the number of operations the
host dispatches, not the arithmetic. This script counts them on any device, so the count can
be checked without a GPU. Models (Spikformer-4-256, 8 heads, MLP ratio 4, T=4, 32x32 input):

- ``a``: our supernet running its largest subnet;
- ``b``: spikingjelly's built-in `Spikformer` of the same size, its pooled stem stages in the
  paper's order (LIF, then max-pool, as ours: `bench_train.spikingjelly_spikformer`);
- ``c``: our supernet running the subnet nearest to half of a's dense MACs.

What is counted (`count_dispatched`): every operator call that reaches torch's dispatcher
from outside another operator (``aten::linear`` counts once, not with the ``aten::mm`` it
calls), in two sums: the operators that compute (``kernels``: a view counts only for the
copy it makes, if any), and all of them, views included, since each costs the host a
dispatch. A convolution's backward counts once per gradient it computes, as a linear layer's
backward (two matrix products and a bias sum) does. spikingjelly's fused neuron
operator (``sj_lif::forward``) counts once per call, and its backward once more, whatever
its CPU implementation runs inside: on CUDA each is one Triton or native kernel. A neuron
that falls back to spikingjelly's Python loop over T is counted op by op, as it runs
everywhere. A training step is forward, cross-entropy and backward (no optimizer step);
an evaluation forward runs in eval mode without gradients, with or without an
`energy.EnergyMonitor` attached.

    python benchmarks/bench_kernels.py [--device cpu] [--batch 2] [--precisions fp32 bf16]

Targets (issue 22): a's training step <= 1.1x b's in every precision; evaluation with the
monitor <= 1.15x the operations of evaluation without it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_supernet import half_mac_subnet, lif_implementation  # noqa: E402
from bench_train import spikingjelly_spikformer  # noqa: E402

from energy import EnergyMonitor  # noqa: E402
from models import SpikformerSupernet, SupernetConfig  # noqa: E402
from nas.precision import autocast  # noqa: E402

FUSED_NEURON_PREFIX = "sj_"
"""spikingjelly registers its fused neuron kernels as operators in ``sj_*`` namespaces."""
_BACKWARD_NODE = "autograd::engine::evaluate_function"
TRAIN_TARGET = 1.1
MONITOR_TARGET = 1.15


def _is_operator(name: str) -> bool:
    return name.startswith("aten::") or name.startswith(FUSED_NEURON_PREFIX)


@functools.cache
def _is_view(name: str) -> bool:
    """An operator whose result may alias its input (its schema says so): no kernel unless it copies."""
    if name in _ALLOCATIONS:
        return True
    if not name.startswith("aten::"):
        return False
    return any(s.returns and s.returns[0].alias_info is not None and not s.returns[0].alias_info.is_write
               for s in torch._C._jit_get_schemas_for_operator(name))


_ALLOCATIONS = frozenset({"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty_strided",
                          "aten::_unsafe_view", "aten::lift_fresh"})
"""Operators that only allocate or re-describe memory, without an alias annotation."""


def _ancestors(event):
    parent = event.cpu_parent
    while parent is not None:
        yield parent
        parent = parent.cpu_parent


def _descendants(event):
    for child in event.cpu_children:
        yield child
        yield from _descendants(child)


def _kernels(event) -> int:
    """1 for an operator that computes; for a view, the computing operators it calls (a copy);
    for a convolution's backward, one per gradient it computes (input, weight, bias), as a
    linear layer's backward takes one operator for each."""
    if event.name == "aten::convolution_backward":
        output_mask = event.concrete_inputs[-1]
        return sum(output_mask) if isinstance(output_mask, list) else 3
    if not _is_view(event.name):
        return 1
    return sum(_kernels(child) for child in event.cpu_children if _is_operator(child.name))


@dataclass(frozen=True)
class Dispatched:
    """What a call dispatched: operators that compute (``kernels``) and all operators (``ops``), by name."""

    kernels: Counter
    ops: Counter


def count_dispatched(fn: Callable[[], object]) -> Dispatched:
    """Operators that `fn` dispatches (see the module docstring for what counts).

    A fused neuron's backward is counted under ``<op>::backward`` once per forward call whose
    autograd nodes ran, however many nodes its CPU implementation recorded.
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    events = list(prof.events())
    fused_call: dict[int, tuple[int, str]] = {}  # autograd sequence number -> (fused call, its name)
    for event in events:
        if event.name.startswith(FUSED_NEURON_PREFIX) and event.name.endswith("::forward"):
            for inner in (event, *_descendants(event)):
                if inner.sequence_nr >= 0:
                    fused_call[inner.sequence_nr] = (event.id, event.name)
    kernels: Counter = Counter()
    ops: Counter = Counter()
    backward_calls: set[tuple[int, str]] = set()
    for event in events:
        if not _is_operator(event.name) or any(_is_operator(a.name) for a in _ancestors(event)):
            continue
        node = next((a for a in _ancestors(event) if a.name.startswith(_BACKWARD_NODE)), None)
        if node is not None and node.sequence_nr in fused_call:
            backward_calls.add(fused_call[node.sequence_nr])
            continue
        ops[event.name] += 1
        if n := _kernels(event):
            kernels[event.name] += n
    for _, name in backward_calls:
        ops[name.replace("::forward", "::backward")] += 1
        kernels[name.replace("::forward", "::backward")] += 1
    return Dispatched(kernels=kernels, ops=ops)


def benchmark_models(device: torch.device):
    """The supernet config and the three runs ``{key: (label, model, subnet or None)}``."""
    supernet_cfg = SupernetConfig(in_channels=3, img_size=32, patch_size=4, num_classes=10, max_depth=4,
                                  max_embed_dim=256, max_num_heads=8, max_mlp_ratio=4.0, time_steps=4)
    torch.manual_seed(0)
    ours = SpikformerSupernet(supernet_cfg).to(device)
    theirs = spikingjelly_spikformer(supernet_cfg, paper_order=True, time_steps=supernet_cfg.time_steps).to(device)
    return supernet_cfg, {
        "a": ("ours, largest subnet 4-256", ours, supernet_cfg.largest_subnet()),
        "b": ("spikingjelly Spikformer 4-256, paper order", theirs, None),
        "c": ("ours, half-MAC subnet", ours, half_mac_subnet(supernet_cfg)),
    }


def _logits(out: torch.Tensor) -> torch.Tensor:
    # spikingjelly's Spikformer returns one output per time step; ours averages them itself.
    return out.mean(0) if out.ndim == 3 else out


def measure(model: nn.Module, subnet, x: torch.Tensor, y: torch.Tensor, precision: str) -> dict[str, Dispatched]:
    """What a training step and an evaluation forward (with and without the monitor) dispatch.

    Each is run once uncounted first, so that one-off work (state creation, caches) is not counted.
    """
    device = x.device

    def prepare(train: bool) -> None:
        if subnet is not None:
            model.set_subnet(subnet)
        model.train(train)

    def train_step() -> None:
        prepare(True)
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(_logits(model(x)), y)
        loss.backward()
        functional.reset_net(model)

    @torch.no_grad()
    def evaluate() -> None:
        prepare(False)
        with autocast(device, precision):
            model(x)
        functional.reset_net(model)

    def monitored() -> None:
        with EnergyMonitor(model, time_steps=4) as monitor:
            evaluate()
        monitor.report()

    counts = {}
    for name, fn in (("train", train_step), ("eval", evaluate), ("eval + monitor", monitored)):
        fn()
        counts[name] = count_dispatched(fn)
    model.zero_grad(set_to_none=True)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--top", type=int, default=0, help="also list the N most dispatched operators of each run")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    _, runs = benchmark_models(device)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    results = {(key, p): measure(model, subnet, x, y, p) for p in args.precisions
               for key, (_, model, subnet) in runs.items()}

    print(f"device: {device}; torch {torch.__version__}; batch {args.batch} of 3x32x32, T=4; "
          f"neurons: {lif_implementation(device)}")
    for key, (label, _, _) in runs.items():
        print(f"{key}: {label}")
    print()
    print("Computing operators dispatched per call (all operators, views included, in brackets):")
    print()
    print("| model | precision | training step (fwd+bwd) | evaluation forward | evaluation + energy monitor "
          f"| monitor / plain (target <= {MONITOR_TARGET}) |")
    print("|---|---|---|---|---|---|")
    for (key, precision), c in results.items():
        cells = [f"{sum(c[k].kernels.values())} ({sum(c[k].ops.values())})"
                 for k in ("train", "eval", "eval + monitor")]
        ratio = sum(c["eval + monitor"].kernels.values()) / sum(c["eval"].kernels.values())
        print(f"| {key} | {precision} | {' | '.join(cells)} | {ratio:.2f} |")
    print()
    for precision in args.precisions:
        a, b, c = (sum(results[(k, precision)]["train"].kernels.values()) for k in "abc")
        print(f"{precision}: training step a/b = {a / b:.2f} (target <= {TRAIN_TARGET}), c/a = {c / a:.2f}")
    if args.top:
        for (key, precision), c in results.items():
            for name, counted in c.items():
                top = ", ".join(f"{op} {n}" for op, n in counted.kernels.most_common(args.top))
                print(f"{key} {precision} {name}: {top}")


if __name__ == "__main__":
    main()
