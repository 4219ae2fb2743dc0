"""How much the energy model changes the search, on the digits supernet.

Draws --subnets random subnets of the digits space (seed --seed), scores each with inherited
weights on the validation split and records its energy under every model (`energy.ENERGY_MODELS`:
ops, loihi and spinnaker2 from the evaluation pass, lemaire from spikingjelly's profiler on the
extracted subnet, one image at a time, on --energy-images images), then prints:

1. the rank correlation (Spearman) of the energies of each pair of models;
2. the Pareto front (accuracy, energy) under each model, and how many subnets of the ops
   front stay on it;
3. the best subnet by F_AEB under each model (E_ref = the largest subnet's energy under it,
   alpha = beta = -0.07);
4. the evaluation cost: the same subnets scored, interleaved, (a) as before energy models
   (one pass, the ops report), (b) recording every per-trial model (ops, loihi, spinnaker2),
   (c) also recording lemaire; medians of --repeats rounds of --timed subnets.

The supernet is the digits recipe's (the distill rule, 30 epochs; --checkpoint, default
autospk-runs/digits-distill-supernet.pt), trained here first if missing (about four minutes on
2 cores).

    python benchmarks/bench_energy_models.py [--checkpoint PATH] [--subnets 200] [--seed 0]
        [--energy-images 32] [--timed 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from energy import ENERGY_MODELS, EnergyMonitor
from nas import AEBSettings, DatasetSpec, EvaluationSettings, SubnetEvaluator, load_checkpoint, load_dataset
from nas.fitness import f_aeb
from nas.scoring import recalibrate_bn, running_counts
from studies.analysis import pareto_front

MODELS = tuple(ENERGY_MODELS)


def _train(path: Path) -> None:
    from nas.recipes import get_recipe
    from nas.space import load_space
    from nas.train import train_supernet

    print(f"training the digits supernet -> {path}", flush=True)
    train_supernet(load_space("digits"), DatasetSpec("digits"), get_recipe("digits"), path, progress=False)


def _before(evaluator: SubnetEvaluator, config) -> float:
    """An evaluation as `SubnetEvaluator` ran it before energy models: recalibrate, one pass
    counting correct predictions under the monitor, the ops report."""
    net = evaluator.net
    net.set_subnet(config)
    recalibrate_bn(net, evaluator._calibration, evaluator.device)
    net.eval()
    with torch.no_grad(), EnergyMonitor(net) as monitor:
        for _ in running_counts(net, evaluator._loader, evaluator.device):
            pass
    return monitor.report().energy_mj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="autospk-runs/digits-distill-supernet.pt")
    parser.add_argument("--subnets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--energy-images", type=int, default=32)
    parser.add_argument("--timed", type=int, default=20, help="subnets timed per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = Path(args.checkpoint)
    if not path.exists():
        _train(path)
    ckpt = load_checkpoint(path)
    data = load_dataset(ckpt.dataset)
    net = ckpt.build_supernet()
    space = ckpt.space
    settings = EvaluationSettings(record_energy_models=("lemaire",), energy_images=args.energy_images)
    evaluator = SubnetEvaluator(net, data.train_eval, data.val, settings=settings)

    rng = random.Random(args.seed)
    configs, seen = [space.largest()], {space.largest().arch_id}
    while len(configs) < args.subnets:
        config = space.sample(rng).active()
        if config.arch_id not in seen:
            seen.add(config.arch_id)
            configs.append(config)
    rows = []
    start = time.perf_counter()
    for number, config in enumerate(configs):
        score = evaluator(config)
        rows.append({"number": number, "arch_id": config.arch_id, "accuracy": score.accuracy,
                     **{f"energy_mj_{m}": score.energies[m].energy_mj for m in MODELS}})
    frame = pd.DataFrame(rows)
    print(f"digits supernet {path}; {len(frame)} subnets (the largest first, then seed {args.seed}) scored on "
          f"{evaluator.images} validation images in {time.perf_counter() - start:.0f} s; lemaire on "
          f"{args.energy_images} of them\n")

    print("## Rank correlation (Spearman) of energy between models\n")
    corr = frame[[f"energy_mj_{m}" for m in MODELS]].corr(method="spearman")
    print("| | " + " | ".join(MODELS) + " |\n|---|" + "---:|" * len(MODELS))
    for a in MODELS:
        print(f"| {a} | " + " | ".join(f"{corr.loc[f'energy_mj_{a}', f'energy_mj_{b}']:.4f}" for b in MODELS) + " |")

    fronts = {}
    for model in MODELS:
        view = frame.assign(energy_mj=frame[f"energy_mj_{model}"], feasible=True)
        fronts[model] = set(pareto_front(view)["number"])
    print("\n## Pareto fronts (accuracy, energy) under each model\n")
    print("| model | subnets on its front | of the ops front's, on it | others on it |\n|---|---:|---:|---:|")
    for model in MODELS:
        kept = len(fronts["ops"] & fronts[model])
        others = len(fronts[model] - fronts["ops"])
        print(f"| {model} | {len(fronts[model])} | {kept} of {len(fronts['ops'])} | {others} |")

    print("\n## Best subnet by F_AEB (alpha = beta = -0.07, E_ref = the largest subnet under each model)\n")
    print("| model | trial | accuracy % | energy under the model | its ops rank by F_AEB | depth, dim, T |\n"
          "|---|---:|---:|---:|---:|---|")
    ops_aeb = None
    for model in MODELS:
        e_ref = frame.loc[0, f"energy_mj_{model}"]
        aeb = AEBSettings(e_ref=float(e_ref))
        scores = [f_aeb(a, e, aeb) for a, e in zip(frame["accuracy"], frame[f"energy_mj_{model}"])]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if model == "ops":
            ops_aeb = order
        best = order[0]
        config = configs[best]
        print(f"| {model} | {best} | {100 * frame.loc[best, 'accuracy']:.2f} | "
              f"{frame.loc[best, f'energy_mj_{model}'] * 1e3:.4g} uJ | {ops_aeb.index(best) + 1} | "
              f"{config.depth}, {config.embed_dim}, {config.time_steps} |")

    print(f"\n## Evaluation cost (median of {args.repeats} rounds of {args.timed} subnets, interleaved)\n")
    timed = configs[1:1 + args.timed]
    modes = {
        "before energy models (ops report only)": (lambda ev, c: _before(ev, c), EvaluationSettings()),
        "every per-trial model (ops, loihi, spinnaker2)": (lambda ev, c: ev(c), EvaluationSettings()),
        "every model, lemaire included": (lambda ev, c: ev(c), settings),
    }
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    for _, (name, (run, mode_settings)) in itertools.product(range(args.repeats), modes.items()):
        fresh = SubnetEvaluator(net, data.train_eval, data.val, settings=mode_settings)
        t0 = time.perf_counter()
        for config in timed:
            run(fresh, config)
        seconds[name].append(time.perf_counter() - t0)
    base = statistics.median(seconds["before energy models (ops report only)"])
    print("| evaluation | s per subnet | vs before |\n|---|---:|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median / len(timed):.3f} | {median / base:.2f}x |")
    print("\ntarget: recording every per-trial model <= 1.3x an evaluation before energy models")


if __name__ == "__main__":
    main()
