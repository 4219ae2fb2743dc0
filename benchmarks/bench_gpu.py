"""One prepared run for a lent GPU: every figure issue 22 asks of a CUDA device, saved as it goes.

Sections, each appended to ``OUT/bench_gpu.md`` (and printed) as soon as it is measured, so a
run cut short keeps what finished:

1. device, versions, the TF32 policy (one for matmul and cuDNN, default off) and the neuron
   implementation that ran;
2. training step (forward, loss, backward) of a, b, c (`bench_supernet`: our largest 4-256
   subnet, spikingjelly's Spikformer 4-256 in paper order, our half-MAC subnet) at batch 64 and
   256, fp32 and bf16: median s/step after 3 warm-up steps, a/b, c/a and bf16/fp32;
3. GPU kernel time against wall time of one step (torch.profiler): a step whose kernels keep the
   GPU busy for a small part of its wall time is launch-bound;
4. evaluation images/s of a and c, plain and replayed from a CUDA graph captured per subnet;
5. peak memory of a training step of the paper space's largest subnet at batch 64, and the
   batch that fits 24 GB and 80 GB (`bench_train.memory_probe`);
6. search throughput: trials per hour scoring random paper-space subnets as a study does
   (`nas.evaluate.SubnetEvaluator`: BN recalibration, then accuracy and energy) on a
   synthetic CIFAR-shaped validation set of 10,000 images;
7. `torch.compile` of a fine-tuning step (one architecture: the half-MAC subnet extracted as a
   standalone `Spikformer`, forward, loss, backward and AdamW step in bf16): compile time and
   step time against eager;
8. the test suite, on the GPU machine, in the time left (``--budget-s`` in all).

    python benchmarks/bench_gpu.py [--out DIR] [--budget-s 480] [--tf32 off|on]
    python benchmarks/bench_gpu.py --smoke     # CPU, tiny sizes, no test suite: keeps the script runnable

The lent machines' image has torch but not spikingjelly, Optuna or plotly: `bash
benchmarks/gpu_wheels.sh` downloads what it lacks into ``.whl/``, and its header gives the
device command that installs them there and runs this script.

Targets (issue 22, GPU): a/b <= 1.0 in fp32 and bf16 at batch 64; evaluation c/a <= 0.65;
bf16 training >= 1.5x fp32 throughput; the test suite passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import spikingjelly
import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kernels import benchmark_models  # noqa: E402
from bench_train import CARDS_GB, lif_implementation, memory_probe, set_tf32  # noqa: E402
from timing import timed  # noqa: E402

from models.neurons import lif  # noqa: E402
from nas import load_space  # noqa: E402
from nas.evaluate import SubnetEvaluator  # noqa: E402
from nas.precision import autocast  # noqa: E402
from nas.settings import EvaluationSettings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WARMUP_STEPS = 3


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What each section runs: full sizes on a GPU, tiny ones in the CPU smoke run."""

    train_batches: tuple[int, ...] = (64, 256)
    repeats: int = 5
    eval_batch: int = 256
    memory_batch: int = 64
    val_images: int = 10_000
    calib: tuple[int, int] = (4, 64)  # batches x images, as a study recalibrates
    trials: int = 10
    compile_backend: str = "inductor"


SMOKE = Sizes(train_batches=(2,), repeats=1, eval_batch=2, memory_batch=2, val_images=64, calib=(1, 8), trials=2,
              compile_backend="eager")  # dynamo's tracing without code generation: seconds, not minutes


class Report:
    """Appends each finished section to a Markdown file and prints it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def section(self, title: str, lines: list[str]) -> None:
        text = f"## {title}\n\n" + "\n".join(lines) + "\n\n"
        with self.path.open("a") as f:
            f.write(text)
        print(text, flush=True)


def _logits(out: torch.Tensor) -> torch.Tensor:
    return out.mean(0) if out.ndim == 3 else out  # spikingjelly's Spikformer gives one output per step


def _median_time(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    for _ in range(WARMUP_STEPS):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def training_steps(device: torch.device, sizes: Sizes, report: Report) -> dict:
    """Section 2; returns {(batch, precision, key): s/step} and the runs for section 3."""
    _, runs = benchmark_models(device)
    medians = {}
    steps = {}
    for batch in sizes.train_batches:
        x = torch.rand(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        for precision in ("fp32", "bf16"):
            for key, (_, model, subnet) in runs.items():
                def step(model=model, subnet=subnet, precision=precision, x=x, y=y) -> None:
                    if subnet is not None:
                        model.set_subnet(subnet)
                    model.train()
                    model.zero_grad(set_to_none=True)
                    with autocast(device, precision):
                        loss = nn.functional.cross_entropy(_logits(model(x)), y)
                    loss.backward()
                    if subnet is None:
                        functional.reset_net(model)

                medians[(batch, precision, key)] = _median_time(step, device, sizes.repeats)
                steps[(batch, precision, key)] = step
    lines = ["| batch | precision | a s/step | b s/step | c s/step | a/b (target <= 1.0) | c/a |",
             "|---|---|---|---|---|---|---|"]
    for batch in sizes.train_batches:
        for precision in ("fp32", "bf16"):
            a, b, c = (medians[(batch, precision, k)] for k in "abc")
            lines.append(f"| {batch} | {precision} | {a:.4f} | {b:.4f} | {c:.4f} | {a / b:.3f} | {c / a:.3f} |")
    lines.append("")
    for batch in sizes.train_batches:
        speedup = medians[(batch, "fp32", "a")] / medians[(batch, "bf16", "a")]
        lines.append(f"batch {batch}: bf16 / fp32 training throughput of a = {speedup:.2f}x (target >= 1.5)")
    lines.append("")
    lines += [f"{key}: {label}" for key, (label, _, _) in runs.items()]
    report.section("Training step", lines)
    return {"medians": medians, "steps": steps, "runs": runs}


def kernel_time(device: torch.device, sizes: Sizes, measured: dict, report: Report) -> None:
    """Section 3: GPU kernel time of one step against its wall time."""
    if device.type != "cuda":
        report.section("GPU kernel time against wall time", ["n/a: needs CUDA"])
        return
    batch = sizes.train_batches[0]
    lines = ["| model | precision | kernels launched | kernel time ms | step wall ms | kernel / wall |",
             "|---|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        for key in "abc":
            step = measured["steps"][(batch, precision, key)]
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step()
                torch.cuda.synchronize(device)
            kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
            busy_ms = sum(e.self_device_time_total for e in kernels) / 1e3
            launches = sum(e.count for e in kernels)
            wall_ms = measured["medians"][(batch, precision, key)] * 1e3
            lines.append(f"| {key} | {precision} | {launches} | {busy_ms:.2f} | {wall_ms:.2f} | "
                         f"{busy_ms / wall_ms:.2f} |")
    lines.append("")
    lines.append(f"batch {batch}; wall time is the median of section 2 (without the profiler). A kernel / wall "
                 "ratio well below 1 means the step waits on the host: launch-bound.")
    report.section("GPU kernel time against wall time", lines)


def _graph_replay(model: nn.Module, x: torch.Tensor, precision: str) -> Callable[[], None]:
    """The evaluation forward of `model` on `x`, captured once in a CUDA graph, as a replay call."""
    static_x = x.clone()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    cast = torch.autocast("cuda", dtype=dtype, cache_enabled=False) if dtype else torch.autocast("cuda", enabled=False)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad(), cast:
        for _ in range(WARMUP_STEPS):
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), cast, torch.cuda.graph(graph):
        model(static_x)
    return graph.replay


def evaluation(device: torch.device, sizes: Sizes, measured: dict, report: Report) -> None:
    """Section 4: evaluation images/s of a and c, plain and from a CUDA graph."""
    runs = measured["runs"]
    x = torch.rand(sizes.eval_batch, 3, 32, 32, device=device)
    lines = ["| model | precision | plain images/s | CUDA graph images/s | graph / plain |", "|---|---|---|---|---|"]
    plain_s = {}
    for precision in ("fp32", "bf16"):
        for key in "ac":
            _, model, subnet = runs[key]
            model.set_subnet(subnet)
            model.eval()

            @torch.no_grad()
            def forward(model=model, precision=precision) -> None:
                with autocast(device, precision):
                    model(x)

            plain_s[(precision, key)] = seconds = _median_time(forward, device, sizes.repeats)
            graph_cell, ratio = "n/a: needs CUDA", ""
            if device.type == "cuda":
                try:
                    replay = _graph_replay(model, x, precision)
                    graph_s = _median_time(replay, device, sizes.repeats)
                    graph_cell, ratio = f"{sizes.eval_batch / graph_s:.0f}", f"{seconds / graph_s:.2f}"
                except Exception as error:  # noqa: BLE001 - the table records why capture failed
                    graph_cell = f"capture failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
            lines.append(f"| {key} | {precision} | {sizes.eval_batch / seconds:.0f} | {graph_cell} | {ratio} |")
    lines.append("")
    for precision in ("fp32", "bf16"):
        lines.append(f"{precision}: evaluation time c/a = {plain_s[(precision, 'c')] / plain_s[(precision, 'a')]:.3f} "
                     "(target <= 0.65)")
    lines.append(f"batch {sizes.eval_batch}, eval mode, no gradients, no energy monitor")
    report.section("Evaluation", lines)


def memory(device: torch.device, sizes: Sizes, report: Report) -> None:
    """Section 5: peak memory of a training step of the paper space's largest subnet."""
    lines = ["| precision | before the step MB | peak MB | per image MB | batch for 24 GB | batch for 80 GB |",
             "|---|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        probe = memory_probe(device, sizes.memory_batch, precision)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        per_image = (probe["peak_mb"] - probe["before_mb"]) / sizes.memory_batch
        fits = [int((gb * 1024 - probe["before_mb"]) / per_image) if per_image > 0 else 0 for gb in CARDS_GB]
        lines.append(f"| {precision} | {probe['before_mb']:.0f} | {probe['peak_mb']:.0f} | {per_image:.1f} | "
                     f"{fits[0]} | {fits[1]} |")
    lines.append("")
    measured = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "CPU: resident memory of this process"
    lines.append(f"paper space, largest subnet (Spikformer-4-384, T=4), batch {sizes.memory_batch}; {measured}")
    report.section("Peak memory of a training step", lines)


def search_throughput(device: torch.device, sizes: Sizes, report: Report) -> None:
    """Section 6: trials per hour on the paper space, scored as a study scores them."""
    from models import SpikformerSupernet

    space = load_space("paper")
    torch.manual_seed(0)
    net = SpikformerSupernet(space.supernet_config(in_channels=3, img_size=32, num_classes=10)).to(device)
    generator = torch.Generator().manual_seed(0)
    calib_batches, calib_size = sizes.calib
    calibration = TensorDataset(torch.rand(calib_batches * calib_size, 3, 32, 32, generator=generator),
                                torch.randint(0, 10, (calib_batches * calib_size,), generator=generator))
    validation = TensorDataset(torch.rand(sizes.val_images, 3, 32, 32, generator=generator),
                               torch.randint(0, 10, (sizes.val_images,), generator=generator))
    settings = EvaluationSettings(calib_batches=calib_batches, calib_batch_size=calib_size,
                                  batch_size=min(256, sizes.val_images))
    evaluator = SubnetEvaluator(net, calibration, validation, settings=settings, device=device)
    rng = random.Random(0)
    evaluator(space.largest())  # warm-up: kernels compiled, memory pools grown
    seconds = [evaluator(space.sample(rng)).seconds for _ in range(sizes.trials)]
    mean = statistics.mean(seconds)
    lines = ["| trials | validation images | precision | mean s per trial | trials per hour |", "|---|---|---|---|---|",
             f"| {sizes.trials} | {sizes.val_images:,} | {evaluator.precision} | {mean:.2f} | {3600 / mean:,.0f} |",
             "", "random paper-space subnets of an untrained supernet on synthetic 3x32x32 images: the work of a "
             "trial, not its scores (BN recalibration, then accuracy and energy in one pass)"]
    report.section("Search throughput", lines)


def compiled_finetuning(device: torch.device, sizes: Sizes, measured: dict, report: Report) -> None:
    """Section 7: a fine-tuning step of one standalone subnet, eager and under `torch.compile`."""
    from models import extract_subnet

    _, supernet, half = measured["runs"]["c"]
    batch, precision = sizes.train_batches[0], "bf16"
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    lines = ["| run | first step s (compiles) | median s/step | vs eager |", "|---|---|---|---|"]
    eager_s = None
    for name in ("eager", "compiled"):
        model = extract_subnet(supernet, half).train()
        runner = torch.compile(model, backend=sizes.compile_backend) if name == "compiled" else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(runner=runner, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, precision):
                loss = nn.functional.cross_entropy(runner(x), y)
            loss.backward()
            optimizer.step()

        try:
            first = timed(step)
            seconds = _median_time(step, device, sizes.repeats)
        except Exception as error:  # noqa: BLE001 - the table records why compiling failed
            lines.append(f"| {name} | failed: {type(error).__name__}: {str(error).splitlines()[0][:120]} | | |")
            continue
        eager_s = eager_s or seconds
        lines.append(f"| {name} | {first:.1f} | {seconds:.4f} | {eager_s / seconds:.2f}x |")
    lines.append("")
    lines.append(f"half-MAC subnet, batch {batch}, {precision}, torch.compile backend {sizes.compile_backend}")
    report.section("torch.compile of a fine-tuning step", lines)


def test_suite(seconds_left: float, report: Report) -> None:
    """Section 8: the test suite on this machine, in the time left."""
    if seconds_left < 60:
        report.section("Test suite", [f"not run: {seconds_left:.0f} s of the budget left"])
        return
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"], cwd=ROOT,
                                capture_output=True, text=True, timeout=seconds_left)
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        report.section("Test suite", [f"exit status {result.returncode}", "", "```", *tail, "```"])
    except subprocess.TimeoutExpired:
        report.section("Test suite", [f"stopped after {seconds_left:.0f} s (the budget); no result"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench_gpu_out")),
                        help="folder for bench_gpu.md (default: $OUT, else ./bench_gpu_out)")
    parser.add_argument("--budget-s", type=float, default=480, help="seconds for the whole run, tests included")
    parser.add_argument("--tf32", choices=["off", "on"], default="off", help="TF32 for matmul and cuDNN alike")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, no test suite")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    sizes = SMOKE if args.smoke else Sizes()
    report = Report(args.out / "bench_gpu.md")
    tf32 = set_tf32(args.tf32 == "on")
    lif()(torch.rand(2, 4, device=device))  # spikingjelly picks its neuron implementation on first use
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    versions = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                f"spikingjelly {getattr(spikingjelly, '__version__', '2')}, Python {platform.python_version()}")
    report.section("Device", [f"device: {name}", versions, tf32, f"neurons: {lif_implementation(device)}",
                              "mode: smoke (tiny sizes, CPU)" if args.smoke else "mode: full"])
    measured = training_steps(device, sizes, report)
    kernel_time(device, sizes, measured, report)
    evaluation(device, sizes, measured, report)
    memory(device, sizes, report)
    search_throughput(device, sizes, report)
    compiled_finetuning(device, sizes, measured, report)
    if args.smoke:
        report.section("Test suite", ["not run in smoke mode"])
    else:
        test_suite(args.budget_s - (time.perf_counter() - start), report)
    print(f"bench_gpu: {time.perf_counter() - start:.0f} s in all; tables in {report.path}")


if __name__ == "__main__":
    main()
