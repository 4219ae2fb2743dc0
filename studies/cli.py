"""autospk-study: train a supernet, create and run studies, look at the results.

    autospk-study quickstart                          # the whole job on digits
    autospk-study train-supernet --dataset digits --output supernet.pt
    autospk-study create --study-name s --objective pareto --checkpoint supernet.pt
    autospk-study optimize --study-name s --n-trials 200 --workers 2
    autospk-study show --study-name s
    autospk-study export --study-name s --trial knee --output knee
    autospk-study finetune --study-name s --trial knee --epochs 5 --output knee-finetuned
    autospk-study delete --study-name s --yes
    optuna-dashboard sqlite:///autospk.db --artifact-dir autospk.db.artifacts

The storage comes from --storage, else $AUTOSPK_STORAGE, else sqlite:///autospk.db; only
create and quickstart make one. An error is one line (a line per cause when workers fail);
--verbose (before or after the command) adds its traceback, --quiet leaves out progress.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import Any

from nas.dataspec import DATASETS
from nas.fitness import AEBSettings
from nas.recipes import RECIPES, RULES
from nas.settings import (
    OBJECTIVE_DESCRIPTIONS,
    OBJECTIVES,
    Budgets,
    EvaluationSettings,
    SamplerSettings,
)
from nas.space import presets

from .arguments import (
    HelpFormatter,
    add_device,
    add_energy_model,
    add_no_progress,
    add_precision,
    add_settings,
    add_storage,
    add_verbosity,
    device_list,
    fraction,
    non_negative_int,
    positive,
    subparser,
    version,
)
from .commands import (
    PROG,
    CLIError,
    _print_tracebacks,
    _storage,
    cmd_create,
    cmd_delete,
    cmd_export,
    cmd_finetune,
    cmd_list,
    cmd_optimize,
    cmd_plot,
    cmd_quickstart,
    cmd_show,
    cmd_train_supernet,
)
from .errors import USER_ERRORS
from .settings import HEARTBEAT_INTERVAL, MAX_RETRIES
from .storage import (
    StorageWarning,
    failure_cause,
    mask_url,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line; building it imports neither torch nor Optuna."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter)
    add_verbosity(parser, False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = subparser(sub, "train-supernet", "train a weight-entangled supernet",
                   "Train the supernet of a search space on a data set (by default the sandwich rule with in-place "
                   "distillation: the largest, the smallest and a random subnet per batch, neuron "
                   "genes included); checkpoint after every epoch. Run under torchrun --nproc-per-node N for "
                   "data-parallel training.")
    p.add_argument("--dataset", default="digits", help=f"data set: {', '.join(DATASETS)}")
    p.add_argument("--data-root", default=None,
                   help="folder of the cifar10/cifar100/folder data, or the folder whose download/ holds an event "
                        "data set's files as its publisher distributes them (see the README)")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    p.add_argument("--img-size", type=positive(int), default=None, help="folder data sets: resize to this size")
    p.add_argument("--frames", type=positive(int), default=None,
                   help="event data sets: frames integrated per sample (None: the space's largest T); a subnet "
                        "with T steps sums them into T windows of consecutive frames")
    p.add_argument("--test-fraction", type=fraction, default=0.2,
                   help="digits, CIFAR10-DVS and folders without a test/ tree: share held out as the test split")
    p.add_argument("--space", default=None,
                   help=f"search space preset ({', '.join(presets())}) or a .toml file "
                        "(None: digits for digits, dvs-cifar10 for cifar10-dvs, dvs-gesture for dvs128-gesture, "
                        "else paper)")
    p.add_argument("--recipe", default=None,
                   help=f"training recipe ({', '.join(RECIPES)}; None: digits for digits, dvs for event data, "
                        "else cifar)")
    p.add_argument("--epochs", type=positive(int), default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=positive(int), default=None, help="override the recipe's batch size")
    p.add_argument("--lr", type=positive(float), default=None, help="override the recipe's learning rate")
    p.add_argument("--rule", choices=RULES, default=None,
                   help="training rule: uniform (one random subnet per step), sandwich (largest + smallest + "
                        "a random one per step) or distill (the sandwich, the others learning from the largest's "
                        "outputs) (None: the recipe's)")
    p.add_argument("--sandwich", action="store_true", help="the same as --rule sandwich")
    add_precision(p, "fp32, bf16 or fp16 autocast of training and validation; fp16 scales the loss (None: bf16 "
                  "on a GPU that supports it, else fp32)")
    p.add_argument("--eval-every", type=non_negative_int, default=1, metavar="K",
                   help="score the largest and the smallest subnet on the validation split every K epochs and "
                        "after the last (0: never); written to the checkpoint's history and NAME.metrics.csv")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and subnet draws")
    add_device(p)
    p.add_argument("--output", default="supernet.pt", help="checkpoint path")
    p.add_argument("--resume", action="store_true", help="continue from --output if it exists")
    add_no_progress(p)
    p.set_defaults(func=cmd_train_supernet)

    p = subparser(sub, "create", "create a study on a trained supernet",
                   "Create a study; everything a worker needs is stored with it.")
    add_storage(p)
    p.add_argument("--objective", required=True, choices=OBJECTIVES,
                   help="; ".join(f"{name}: {OBJECTIVE_DESCRIPTIONS[name]}" for name in OBJECTIVES))
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint from train-supernet")
    p.add_argument("--skip-if-exists", action="store_true", help="reuse the study if it exists")
    add_settings(p, AEBSettings, "F_AEB = Acc x (E/E_ref)^w, w = alpha if E <= E_ref else beta")
    add_settings(p, Budgets, "budgets (become Optuna constraints)")
    add_settings(p, SamplerSettings, "sampler (Auto-Spikformer evolution)")
    add_settings(p, EvaluationSettings, "evaluation")
    p.add_argument("--heartbeat-interval", type=positive(int), default=HEARTBEAT_INTERVAL,
                   help="database storages: seconds between heartbeats of a running trial")
    p.add_argument("--max-retries", type=non_negative_int, default=MAX_RETRIES,
                   help="retries of a trial whose worker died (killed, out of memory, a crash); after 1 + N tries "
                        "its architecture is given up on, recorded as failed with the cause, and the search goes on")
    p.add_argument("--no-enqueue-largest", action="store_true",
                   help="do not evaluate the largest subnet first (it is the study's baseline)")
    p.add_argument("--artifact-dir", default=None,
                   help="folder of the study's artifacts (each trial's per-layer energy table), writable by every "
                        "worker (None: next to a SQLite or journal file, else next to the checkpoint)")
    add_device(p, "device used to measure E_ref (None: cuda if available)")
    p.set_defaults(func=cmd_create)

    p = subparser(sub, "optimize", "run trials of a study (many workers allowed)",
                   "Run workers on a study until it holds --n-trials finished trials in all (complete, or "
                   "rejected early with --early-rejection) or --timeout passes. --n-trials is the study's total, "
                   "not a number of trials to add (unlike Optuna's n_trials): a study holding 100 runs 50 more "
                   "with --n-trials 150, and none with --n-trials 50 (it says so). Workers on several hosts "
                   "given the same total against one database storage stop together; running the command "
                   "again after a crash finishes the job. The checkpoint is checked before any worker starts.")
    add_storage(p)
    p.add_argument("--n-trials", type=positive(int), default=None,
                   help="finished trials the study should hold in all (not trials to add), complete or (with "
                        "--early-rejection) rejected early")
    p.add_argument("--timeout", type=positive(float), default=None, help="seconds")
    p.add_argument("--workers", type=positive(int), default=1,
                   help="worker processes on this host: at most one per CPU core, and as many as its memory holds")
    add_device(p, "where every worker evaluates: cpu, cuda, cuda:1 ... (default: worker i on a host with K "
               "GPUs uses cuda:(i mod K); the CPU without GPUs)")
    p.add_argument("--devices", type=device_list, default=None, metavar="D1,D2,...",
                   help="devices dealt out to the workers in turn, e.g. cuda:0,cuda:2 (overrides --device)")
    add_no_progress(p, "no progress: by default a bar on a terminal with the front size and the best value so "
                    "far, else a line per generation")
    p.set_defaults(func=cmd_optimize)

    p = subparser(sub, "list", "list the studies in a storage")
    add_storage(p, study=False)
    p.set_defaults(func=cmd_list)

    p = subparser(sub, "show", "show the Pareto front (3-D for pareto3) or the best F_AEB trials")
    add_storage(p)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="output format; json and csv hold the stored values: accuracy as a fraction in [0, 1], "
                        "energies in mJ per image (the table prints percent and a unit that suits the values)")
    p.add_argument("--top", type=positive(int), default=10, help="aeb studies: rows shown")
    p.add_argument("--baseline", action="store_true",
                   help="add the baseline (the largest subnet, trial 0) as a row if it is not shown, and columns "
                        "against it: accuracy difference in percentage points, energy ratio to the baseline and "
                        "to the same network run as an ANN (E_MAC x dense MACs)")
    add_energy_model(p, "--energy-model",
                     "read the front under this recorded energy model instead of the study's own, without "
                     "evaluating anything again: ops, loihi and spinnaker2 are recorded for every trial, "
                     "lemaire where the study asked for it")
    p.set_defaults(func=cmd_show)

    p = subparser(sub, "plot", "write an HTML report with the Pareto figure and more")
    add_storage(p)
    p.add_argument("--output", default="report.html", help="the HTML file")
    p.add_argument("--trial", type=int, default=None,
                   help="trial of the energy breakdown, read from the table it stored (None: F_AEB best)")
    add_device(p, "where to measure the breakdown of a trial that stored no table (older studies)")
    add_energy_model(p, "--compare-energy-model",
                     "recorded energy model whose front the report draws beside the study's own (default: ops, "
                     "or loihi for a study searched under ops)")
    p.set_defaults(func=cmd_plot)

    p = subparser(sub, "export", "export a subnet to run anywhere: weights, config, input transform, test metrics",
                   "Write OUTPUT/subnet.pt (loaded with models.load_exported: the model plus its input transform) "
                   "and OUTPUT/subnet.json: the subnet's config and weights, the raw-input transform of its data set, "
                   "the study and trial, and the accuracy and energy measured on the whole test split.")
    add_storage(p)
    p.add_argument("--trial", default="best",
                   help="best (F_AEB), knee (of the front, 3-D for pareto3) or a trial number")
    p.add_argument("--output", default="subnet", help="output folder")
    add_device(p, "where to measure")
    p.set_defaults(func=cmd_export)

    p = subparser(sub, "finetune", "fine-tune a subnet from its inherited weights, then export it",
                   "Train the chosen subnet, extracted from the supernet, on from its inherited weights with the "
                   "supernet's recipe made for fine-tuning (a tenth of its peak learning rate, no warmup, one network "
                   "per step); checkpoint after every epoch (--resume continues), then score it on the test split "
                   "and write an export like `export`, which records the fine-tuning and the inherited scores.")
    add_storage(p)
    p.add_argument("--trial", default="best",
                   help="best (F_AEB), knee (of the front, 3-D for pareto3) or a trial number")
    p.add_argument("--epochs", type=positive(int), default=None,
                   help="fine-tuning epochs (None: a tenth of the supernet recipe's, at least 1)")
    p.add_argument("--lr", type=positive(float), default=None,
                   help="peak learning rate (None: a tenth of the supernet recipe's)")
    p.add_argument("--output", default="finetuned",
                   help="output folder: the export, finetune.pt and finetune.metrics.csv")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/finetune.pt if it exists")
    p.add_argument("--seed", type=int, default=0, help="seed of data order and augmentation")
    add_precision(p, "fp32, bf16 or fp16 autocast of training (None: bf16 on a GPU that supports it, else fp32)")
    add_device(p)
    add_no_progress(p, "no progress bars")
    p.set_defaults(func=cmd_finetune)

    p = subparser(sub, "delete", "delete a study and all its trials",
                   "Delete a study and all its trials, e.g. one whose create was interrupted (a plain "
                   "create of the same name also replaces that one). Stop the study's workers first. Without "
                   "--yes it asks, and refuses when the input is not a terminal.")
    add_storage(p)
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.set_defaults(func=cmd_delete)

    p = subparser(sub, "quickstart", "the whole job on digits in one command",
                   "Train the digits supernet, create an aeb and a pareto study in one storage, search both, "
                   "print the results and the optuna-dashboard command. Rerunning continues where it stopped.")
    add_storage(p, study=False)
    p.add_argument("--workdir", default="autospk-runs", help="where the checkpoint goes")
    p.add_argument("--prefix", default="digits", help="study names: PREFIX-aeb and PREFIX-pareto")
    p.add_argument("--trials", type=positive(int), default=60, help="trials per study (3 generations of 20)")
    p.add_argument("--epochs", type=positive(int), default=None, help="supernet epochs (None: the recipe's)")
    p.add_argument("--population-size", type=positive(int), default=20, help="trials per generation")
    p.add_argument("--seed", type=int, default=0, help="seed of training and search")
    add_device(p)
    add_no_progress(p)
    p.set_defaults(func=cmd_quickstart)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    # A repaired storage is news for the user, not a bug report: one line, like the errors.
    if issubclass(category, StorageWarning):
        text = f"{PROG}: warning: {message}\n"
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line)
    (file or sys.stderr).write(text)


def _error_line(err: Exception, args: argparse.Namespace) -> str | None:
    """What went wrong, in one line; None for an error that is a bug, whose traceback is printed."""
    if isinstance(err, (CLIError, *USER_ERRORS)):
        return str(err)
    cause = failure_cause(err)
    if cause is None:
        return None
    return f"storage {mask_url(_storage(args))} failed: {cause}" if hasattr(args, "storage") else cause


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("give --verbose or --quiet, not both")
    from .optuna_log import quiet_optuna

    quiet_optuna(args.verbose)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.func(args)
    except KeyboardInterrupt as err:
        if args.verbose:
            traceback.print_exception(err)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`show ... | head`): stop quietly, as other command-line tools do.
        # Point stdout at /dev/null so that Python's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        line = _error_line(err, args)
        if line is None:
            raise
        if args.verbose:
            _print_tracebacks(args, getattr(err, "failures", ()))
            traceback.print_exception(err)
        print(f"{PROG}: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
