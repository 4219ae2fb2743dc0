"""autospk-study: train a supernet, create and run studies, look at the results.

    autospk-study quickstart                          # the whole job on digits
    autospk-study train-supernet --dataset digits --output supernet.pt
    autospk-study create --study-name s --objective pareto --checkpoint supernet.pt
    autospk-study optimize --study-name s --n-trials 200 --workers 2
    autospk-study show --study-name s
    optuna-dashboard sqlite:///autospk.db

The storage comes from --storage, else $AUTOSPK_STORAGE, else sqlite:///autospk.db.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from .storage import STORAGE_ENV, StorageError, default_storage, normalize_url, open_storage
from .errors import StudyError

PROG = "autospk-study"


class CLIError(Exception):
    """A bad command line: printed as one line, exit status 2."""


def _add_storage(p: argparse.ArgumentParser, *, study: bool = True) -> None:
    p.add_argument("--storage", default=None,
                   help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///autospk.db); "
                        "sqlite:///file.db, postgresql://..., mysql+pymysql://..., journal:///abs/file.log")
    if study:
        p.add_argument("--study-name", required=True, help="name of the study")


def _storage(args: argparse.Namespace) -> str:
    return normalize_url(args.storage or default_storage())


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value
    return parse


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be a probability in [0, 1]")
    return value


# ----------------------------------------------------------------------------- train-supernet


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from nas import DATASETS, presets
    from nas.recipes import RECIPES

    p.add_argument("--dataset", default="digits", help=f"data set: {', '.join(DATASETS)} (default: digits)")
    p.add_argument("--data-root", default=None, help="folder of cifar10/cifar100/folder data")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    p.add_argument("--img-size", type=_positive(int), default=None, help="folder data sets: resize to this size")
    p.add_argument("--space", default=None,
                   help=f"search space preset ({', '.join(presets())}) or a .toml file "
                        "(default: digits for digits, else paper)")
    p.add_argument("--recipe", default=None,
                   help=f"training recipe ({', '.join(RECIPES)}; default: digits for digits, else cifar)")
    p.add_argument("--epochs", type=_positive(int), default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="override the recipe's batch size")
    p.add_argument("--lr", type=_positive(float), default=None, help="override the recipe's learning rate")
    p.add_argument("--sandwich", action="store_true",
                   help="train largest + smallest + a random subnet at every step")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and subnet draws")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def _train(args: argparse.Namespace, output: Path, resume: bool, progress: bool = True) -> Path:
    import torch

    from nas import DatasetSpec, load_space
    from nas.recipes import get_recipe
    from nas.train import train_supernet

    dataset = DatasetSpec(name=args.dataset, root=args.data_root, download=args.download, img_size=args.img_size)
    space = load_space(args.space or ("digits" if args.dataset == "digits" else "paper"))
    recipe = get_recipe(args.recipe or ("digits" if args.dataset == "digits" else "cifar"))
    recipe = recipe.replace(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            sandwich=True if args.sandwich else None)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    train_supernet(space, dataset, recipe, output, resume=resume, seed=args.seed, device=device, progress=progress)
    return output


def cmd_train_supernet(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    if "LOCAL_RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if args.device and args.device.startswith("cuda") else "gloo")
    try:
        out = _train(args, Path(args.output), args.resume, progress=not args.no_progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    print(f"supernet checkpoint: {out.resolve()}")


# ----------------------------------------------------------------------------- create


def _add_create_args(p: argparse.ArgumentParser) -> None:
    from nas.fitness import DEFAULT_ALPHA, DEFAULT_BETA

    g = p.add_argument_group("F_AEB = Acc x (E/E_ref)^w, w = alpha if E <= E_ref else beta")
    g.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help=f"default {DEFAULT_ALPHA}")
    g.add_argument("--beta", type=float, default=DEFAULT_BETA, help=f"default {DEFAULT_BETA}")
    g.add_argument("--e-ref", type=_positive(float), default=None,
                   help="reference energy in mJ (default: measured energy of the largest subnet)")
    g = p.add_argument_group("budgets (become Optuna constraints)")
    g.add_argument("--max-params", type=_positive(int), default=None)
    g.add_argument("--max-energy-mj", type=_positive(float), default=None)
    g = p.add_argument_group("sampler (Auto-Spikformer evolution)")
    g.add_argument("--population-size", type=_positive(int), default=50)
    g.add_argument("--num-parents", type=_positive(int), default=10, help="top-k parents per generation")
    g.add_argument("--crossover-fraction", type=_probability, default=0.5)
    g.add_argument("--global-mutation-prob", type=_probability, default=0.4, help="depth, embed_dim, T")
    g.add_argument("--block-mutation-prob", type=_probability, default=0.2, help="each per-block gene")
    g.add_argument("--neighbour-mutation", action="store_true", help="mutate ordered genes by one step")
    g.add_argument("--candidates", type=_positive(int), default=4,
                   help="children drawn per proposal; a surrogate fitted on the finished trials keeps the one "
                        "predicted to add the most to the front (1 = plain NSGA-II; default 4)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("evaluation")
    g.add_argument("--calib-batches", type=_positive(int), default=4, help="batches for BN recalibration")
    g.add_argument("--calib-batch-size", type=_positive(int), default=64)
    g.add_argument("--eval-batch-size", type=_positive(int), default=256)
    g.add_argument("--energy-profile", default="fp32", help="fp32, fp16, int8 or 'E_MAC,E_AC' in pJ")
    g.add_argument("--heartbeat-interval", type=_positive(int), default=10,
                   help="database storages: seconds between heartbeats of a running trial")
    p.add_argument("--no-enqueue-largest", action="store_true", help="do not evaluate the largest subnet first")
    p.add_argument("--device", default=None, help="device used to measure E_ref")


def _create(args: argparse.Namespace, storage: str, name: str, objective: str, checkpoint: str,
            skip_if_exists: bool) -> optuna.Study:
    from energy import get_profile

    from .study import create

    get_profile(args.energy_profile)
    return create(
        storage, name, objective=objective, checkpoint=checkpoint, alpha=args.alpha, beta=args.beta,
        e_ref=args.e_ref, max_params=args.max_params, max_energy_mj=args.max_energy_mj,
        population_size=args.population_size, num_parents=args.num_parents,
        crossover_fraction=args.crossover_fraction, global_mutation_prob=args.global_mutation_prob,
        block_mutation_prob=args.block_mutation_prob, neighbour_mutation=args.neighbour_mutation,
        candidates=args.candidates, seed=args.seed, calib_batches=args.calib_batches,
        calib_batch_size=args.calib_batch_size, batch_size=args.eval_batch_size, profile=args.energy_profile,
        heartbeat_interval=args.heartbeat_interval,
        enqueue_largest=not args.no_enqueue_largest, skip_if_exists=skip_if_exists, device=args.device,
    )


def cmd_create(args: argparse.Namespace) -> None:
    study = _create(args, _storage(args), args.study_name, args.objective, args.checkpoint, args.skip_if_exists)
    print(f"study '{study.study_name}' ({args.objective}) in {_storage(args)}")


# ----------------------------------------------------------------------------- optimize


def _worker(storage: str, name: str, n_trials: int | None, timeout: float | None, index: int,
            device: str | None, threads: int) -> None:
    import torch

    from .study import run_worker

    _quiet()
    # Workers sharing a host would oversubscribe its cores with torch's default threads.
    torch.set_num_threads(threads)
    run_worker(storage, name, n_trials=n_trials, timeout=timeout, seed_offset=index, device=device)


def _complete(storage: str, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def optimize(storage: str, name: str, *, n_trials: int | None, timeout: float | None, workers: int = 1,
             device: str | None = None, progress: bool = True) -> None:
    """Run `workers` processes on one study until it holds `n_trials` complete trials."""
    from .study import load

    load(storage, name)
    start = _complete(storage, name)
    bar = tqdm(total=n_trials, initial=min(start, n_trials or start), desc=name, unit="trial",
               disable=not progress, dynamic_ncols=True)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_worker, args=(storage, name, n_trials, timeout, i, device, threads))
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            bar.n = min(_complete(storage, name), bar.total or 10**9)
            bar.refresh()
    finally:
        for p in procs:
            p.join()
        bar.n = min(_complete(storage, name), bar.total or 10**9)
        bar.close()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise StudyError(f"{len(failed)} of {workers} workers failed (exit codes {failed}); see their messages above")


def cmd_optimize(args: argparse.Namespace) -> None:
    if args.n_trials is None and args.timeout is None:
        raise CLIError("give --n-trials and/or --timeout")
    optimize(_storage(args), args.study_name, n_trials=args.n_trials, timeout=args.timeout, workers=args.workers,
             device=args.device, progress=not args.no_progress)
    print(f"study '{args.study_name}': {_complete(_storage(args), args.study_name)} complete trials")


# ----------------------------------------------------------------------------- list / show


def cmd_list(args: argparse.Namespace) -> None:
    store = open_storage(_storage(args))
    summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    if not summaries:
        print(f"no studies in {_storage(args)}")
        return
    print(f"{'study':24} {'objective':9} {'data set':9} {'trials':>6}  created")
    for s in sorted(summaries, key=lambda s: s.study_name):
        attrs = s.user_attrs
        created = s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-"
        print(f"{s.study_name:24} {attrs.get('objective', '-'):9} {attrs.get('dataset', '-'):9} "
              f"{s.n_trials:>6}  {created}")


def show_frame(storage: str, name: str, top: int):
    """The Pareto front (pareto) or the top F_AEB trials (aeb), with architecture columns."""
    from .study import load

    study, settings = load(storage, name)
    from .analysis import pareto_front, trials_frame

    frame = trials_frame(study)
    if frame.empty:
        raise StudyError(f"study '{name}' has no complete trials yet; run `{PROG} optimize`")
    feasible = frame[frame["feasible"]] if "feasible" in frame else frame
    if settings["objective"] == "pareto":
        shown = pareto_front(frame)
    else:
        shown = feasible.sort_values("f_aeb", ascending=False).head(top)
    return shown, settings


def cmd_show(args: argparse.Namespace) -> None:
    shown, settings = show_frame(_storage(args), args.study_name, args.top)
    shown = shown.dropna(axis=1, how="all")
    if args.format == "json":
        print(shown.to_json(orient="records", indent=1))
    elif args.format == "csv":
        print(shown.to_csv(index=False), end="")
    else:
        what = "Pareto front" if settings["objective"] == "pareto" else f"top {args.top} by F_AEB"
        print(f"{args.study_name}: {what} ({settings['dataset']['name']}, E_ref {settings['aeb']['e_ref']:.4g} mJ)")
        table = shown.copy()
        if "accuracy" in table:
            table["accuracy"] = (100 * table["accuracy"]).round(2)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


# ----------------------------------------------------------------------------- plot / export


def cmd_plot(args: argparse.Namespace) -> None:
    from .plots import write_report
    from .study import load

    study, settings = load(_storage(args), args.study_name)
    path = write_report(study, settings, args.output, breakdown_trial=args.trial, device=args.device)
    print(f"report: {Path(path).resolve()}")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_trial
    from .study import load

    study, settings = load(_storage(args), args.study_name)
    trial = int(args.trial) if args.trial.isdigit() else args.trial
    if trial not in ("best", "knee") and not isinstance(trial, int):
        raise CLIError(f"--trial {args.trial!r}: give best, knee or a trial number")
    result = export_trial(study, settings, args.output, trial=trial, device=args.device)
    print(json.dumps(result, indent=1, default=str))


# ----------------------------------------------------------------------------- quickstart


def cmd_quickstart(args: argparse.Namespace) -> None:
    import torch

    storage = _storage(args)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "digits-supernet.pt"
    t0 = time.perf_counter()
    print(f"[1/3] training the digits supernet -> {checkpoint}")
    train_args = argparse.Namespace(
        dataset="digits", data_root=None, download=False, img_size=None, space="digits", recipe="digits",
        epochs=args.epochs, batch_size=None, lr=None, sandwich=False, seed=args.seed, device=args.device)
    _train(train_args, checkpoint, resume=True, progress=not args.no_progress)
    print(f"      done in {time.perf_counter() - t0:.0f} s")
    create_args = argparse.Namespace(
        alpha=-0.07, beta=-0.07, e_ref=None, max_params=None, max_energy_mj=None,
        population_size=args.population_size, num_parents=max(2, args.population_size // 5),
        crossover_fraction=0.5, global_mutation_prob=0.4, block_mutation_prob=0.2, neighbour_mutation=False,
        candidates=4, seed=args.seed, calib_batches=4, calib_batch_size=64, eval_batch_size=256,
        energy_profile="fp32", heartbeat_interval=10, no_enqueue_largest=False, device=args.device)
    for step, objective in ((2, "aeb"), (3, "pareto")):
        name = f"{args.prefix}-{objective}"
        print(f"[{step}/3] searching study '{name}' ({args.trials} trials)")
        _create(create_args, storage, name, objective, str(checkpoint), skip_if_exists=True)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        optimize(storage, name, n_trials=args.trials, timeout=None, workers=1, device=device,
                 progress=not args.no_progress)
    for objective in ("aeb", "pareto"):
        name = f"{args.prefix}-{objective}"
        print()
        cmd_show(argparse.Namespace(storage=storage, study_name=name, top=5, format="table"))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s. Browse the studies with:\n\n    optuna-dashboard {storage}\n")


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("train-supernet", help="train a weight-entangled supernet",
                       description="Train the supernet of a search space on a data set (one random subnet per "
                                   "batch, neuron genes included); checkpoint after every epoch. Run under "
                                   "torchrun --nproc-per-node N for data-parallel training.")
    _add_train_args(p)
    p.add_argument("--output", default="supernet.pt", help="checkpoint path (default: supernet.pt)")
    p.add_argument("--resume", action="store_true", help="continue from --output if it exists")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_supernet)

    p = sub.add_parser("create", help="create a study on a trained supernet",
                       description="Create a study; everything a worker needs is stored with it.")
    _add_storage(p)
    p.add_argument("--objective", required=True, choices=["aeb", "pareto"],
                   help="aeb: maximise F_AEB; pareto: maximise accuracy, minimise energy")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint from train-supernet")
    p.add_argument("--skip-if-exists", action="store_true", help="reuse the study if it exists")
    _add_create_args(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("optimize", help="run trials of a study (many workers allowed)",
                       description="Run workers on a study until it holds --n-trials complete trials or "
                                   "--timeout passes. Run this on several hosts against one database storage "
                                   "to search in parallel.")
    _add_storage(p)
    p.add_argument("--n-trials", type=_positive(int), default=None, help="complete trials the study should hold")
    p.add_argument("--timeout", type=_positive(float), default=None, help="seconds")
    p.add_argument("--workers", type=_positive(int), default=1, help="worker processes on this host")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("list", help="list the studies in a storage")
    _add_storage(p, study=False)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show the Pareto front or the best F_AEB trials")
    _add_storage(p)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--top", type=_positive(int), default=10, help="aeb studies: rows shown")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("plot", help="write an HTML report with the Pareto figure and more")
    _add_storage(p)
    p.add_argument("--output", default="report.html")
    p.add_argument("--trial", type=int, default=None, help="trial of the energy breakdown (default: F_AEB best)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", help="export a subnet: config JSON + standalone checkpoint + test metrics")
    _add_storage(p)
    p.add_argument("--trial", default="best", help="best (F_AEB), knee (of the front) or a trial number")
    p.add_argument("--output", default="subnet", help="output folder")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quickstart", help="the whole job on digits in one command",
                       description="Train the digits supernet, create an aeb and a pareto study in one storage, "
                                   "search both, print the results and the optuna-dashboard command. "
                                   "Rerunning continues where it stopped.")
    _add_storage(p, study=False)
    p.add_argument("--workdir", default="autospk-runs", help="where the checkpoint goes")
    p.add_argument("--prefix", default="digits", help="study names: PREFIX-aeb and PREFIX-pareto")
    p.add_argument("--trials", type=_positive(int), default=100, help="trials per study")
    p.add_argument("--epochs", type=_positive(int), default=None, help="supernet epochs (default: recipe's)")
    p.add_argument("--population-size", type=_positive(int), default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quickstart)
    return parser


def _quiet() -> None:
    """Optuna flags the heartbeat, metric names and retry callback as experimental."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet()
    try:
        args.func(args)
    except (CLIError, StudyError, StorageError, ValueError, FileNotFoundError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
