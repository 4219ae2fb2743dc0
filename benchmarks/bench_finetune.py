"""Inherited vs fine-tuned subnets on digits: the baseline (largest subnet), the knee and the best F_AEB.

Trains the digits supernet with the `digits` recipe (or takes --checkpoint), then searches
what `autospk-study quickstart` searches: a pareto and an aeb study on it, 100 trials each
(or takes --storage with --study-name, and --aeb-study-name if the best F_AEB should come
from another study than the knee). For the largest subnet (trial 0 of the pareto study, the
hand-designed Spikformer point that E_ref comes from), the knee of the pareto front and the
best-F_AEB trial of the aeb study, it exports the subnet with its inherited weights and
fine-tunes it (`autospk-study finetune`: the supernet recipe at a tenth of its learning
rate), scoring both on the whole test split. Prints one markdown table. Everything goes into
--workdir, and a rerun reuses what is there (supernet, studies, fine-tuning checkpoints).

    python benchmarks/bench_finetune.py [--workdir bench-finetune] [--trials 100] [--epochs 10]
        [--space digits|digits-large] [--checkpoint PATH] [--storage URL --study-name NAME [--aeb-study-name NAME]]
        [--lr LR] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import optuna

from nas import DatasetSpec, SamplerSettings, finetune_recipe, get_recipe, load_checkpoint, load_space
from nas.train import train_supernet
from studies.export import export_trial, finetune_trial
from studies.results import select_trial
from studies.study import create, load
from studies.workers import run_worker


def _supernet(args: argparse.Namespace, workdir: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    path = workdir / f"{args.space}-supernet.pt"
    recipe = get_recipe("digits")
    if not path.exists() or load_checkpoint(path).epoch < recipe.epochs:
        train_supernet(load_space(args.space), DatasetSpec("digits"), recipe, path, resume=True, seed=args.seed,
                       device=args.device, progress=False)
    return path


def _studies(args: argparse.Namespace, workdir: Path, checkpoint: Path) -> tuple[str, str, str]:
    """The storage, the study whose knee is taken and the study whose best F_AEB is taken."""
    if args.storage:
        return args.storage, args.study_name, args.aeb_study_name or args.study_name
    storage = f"sqlite:///{(workdir / 'bench.db').resolve()}"
    sampler = SamplerSettings(population_size=args.population_size, seed=args.seed)
    for objective in ("pareto", "aeb"):
        create(storage, f"bench-{objective}", objective=objective, checkpoint=checkpoint, skip_if_exists=True,
               device=args.device, sampler=sampler)
        run_worker(storage, f"bench-{objective}", n_trials=args.trials, device=args.device)
    return storage, "bench-pareto", "bench-aeb"


def _genes(config: dict) -> str:
    return f"{config['depth']}-{config['embed_dim']}, T={config['time_steps']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="bench-finetune", help="supernet, study and exports")
    parser.add_argument("--checkpoint", default=None, help="a trained supernet (default: train one on digits)")
    parser.add_argument("--space", default="digits", help="the space of the supernet trained here (digits-large: "
                                                          "deeper and narrower, a longer front)")
    parser.add_argument("--storage", default=None, help="a storage holding --study-name (default: search one)")
    parser.add_argument("--study-name", default=None, help="the study of the baseline and the knee")
    parser.add_argument("--aeb-study-name", default=None,
                        help="the study of the best F_AEB (default: --study-name)")
    parser.add_argument("--trials", type=int, default=100, help="trials of each study searched here")
    parser.add_argument("--population-size", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning peak lr (default: a tenth of the recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if bool(args.storage) != bool(args.study_name):
        parser.error("give --storage and --study-name together")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    checkpoint = _supernet(args, workdir)
    storage, pareto_name, aeb_name = _studies(args, workdir, checkpoint)
    pareto, pareto_settings = load(storage, pareto_name)
    aeb, aeb_settings = load(storage, aeb_name)
    setup = time.perf_counter() - start
    largest = pareto_settings.space.largest().active().arch_id
    baseline = next(t.number for t in pareto.trials if t.user_attrs.get("arch_id") == largest)
    chosen = {"baseline (largest)": (pareto, pareto_settings, baseline),
              "knee": (pareto, pareto_settings, select_trial(pareto, pareto_settings, "knee").number),
              "best F_AEB": (aeb, aeb_settings, select_trial(aeb, aeb_settings, "best").number)}

    rows = []
    for role, (study, settings, trial) in chosen.items():
        folder = workdir / "exports" / f"{study.study_name}-{trial}"
        inherited = export_trial(study, settings, folder / "inherited", trial=trial, device=args.device)
        t0 = time.perf_counter()
        tuned = finetune_trial(study, settings, folder / "finetuned", trial=trial, epochs=args.epochs, lr=args.lr,
                               resume=True, seed=args.seed, device=args.device, progress=False)
        rows.append((role, inherited, tuned, time.perf_counter() - t0))

    recipe = finetune_recipe(load_checkpoint(checkpoint).recipe, epochs=args.epochs, lr=args.lr)
    base_energy = rows[0][2]["test_energy_mj"]
    ev = pareto_settings.evaluation
    studies = f"'{pareto_name}'" + (f" and '{aeb_name}'" if aeb_name != pareto_name else "")
    print(f"digits, space {pareto_settings.space.name}: studies {studies} ({len(pareto.trials)} and "
          f"{len(aeb.trials)} trials), supernet {checkpoint}; fine-tuning {recipe.epochs} epochs at peak lr "
          f"{recipe.lr:g} (batch {recipe.batch_size}), seed {args.seed}; test split {rows[0][1]['test_images']} "
          f"images; energy: {ev.profile} profile, first layer {ev.first_layer}; set-up {setup:.0f} s")
    knee, best = rows[1][2], rows[2][2]
    if knee["arch_id"] == best["arch_id"]:
        print("note: the knee and the best-F_AEB trial are the same subnet")
    print()
    print("| subnet | study | trial | depth-dim, T | params | test acc inherited | test acc fine-tuned "
          "| change (points) | energy inherited (uJ) | energy fine-tuned (uJ) | fine-tuned energy / baseline "
          "| fine-tune s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for role, inherited, tuned, seconds in rows:
        before, after = inherited["test_accuracy"], tuned["test_accuracy"]
        print(f"| {role} | {tuned['study']} | {tuned['trial']} | {_genes(tuned['config'])} | {tuned['params']:,} "
              f"| {before:.2%} | {after:.2%} | {100 * (after - before):+.2f} | {inherited['test_energy_mj'] * 1e3:.3f} "
              f"| {tuned['test_energy_mj'] * 1e3:.3f} | {tuned['test_energy_mj'] / base_energy:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
