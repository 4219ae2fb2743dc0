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
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models import ConfigError
from nas.dataspec import DATASETS
from nas.fitness import AEBSettings
from nas.recipes import RECIPES, RULES
from nas.settings import (
    ENERGY_MODEL_NAMES,
    FIRST_LAYER_CONVENTIONS,
    OBJECTIVE_DESCRIPTIONS,
    OBJECTIVES,
    ON_REQUEST_MODELS,
    PRECISIONS,
    Budgets,
    EvaluationSettings,
    SamplerSettings,
    settings_help,
)
from nas.space import presets

from .errors import USER_ERRORS, StudyError
from .settings import HEARTBEAT_INTERVAL, check_study_name
from .storage import (
    DEFAULT_STORAGE,
    STORAGE_ENV,
    StorageWarning,
    default_storage,
    failure_cause,
    mask_url,
    normalize_url,
)

PROG = "autospk-study"

QUICKSTART_OBJECTIVES = ("aeb", "pareto")
"""The studies `quickstart` searches: the paper's F_AEB and its (accuracy, energy) trade-off."""


class CLIError(Exception):
    """A bad command line: printed as one line, exit status 2."""


def _number(kind: type, ok: Callable[[Any], bool], requirement: str) -> Callable[[str], Any]:
    """An argparse type: `kind` of the text, refused unless `ok` (the message says `requirement`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} must be {requirement}")
        return value
    return parse


def _positive(kind: type) -> Callable[[str], Any]:
    return _number(kind, lambda v: v > 0, "> 0")


_non_negative_int = _number(int, lambda v: v >= 0, ">= 0")
_confidence = _number(float, lambda v: 0.0 < v < 1.0, "a level in (0, 1), e.g. 0.99")
_probability = _number(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a fraction in (0, 1), e.g. 0.2")


def _precision(text: str) -> str:
    if text not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a precision; choose from {', '.join(PRECISIONS)}")
    return text


def _first_layer(text: str) -> str:
    if text not in FIRST_LAYER_CONVENTIONS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a first-layer convention; choose from "
                                         f"{', '.join(FIRST_LAYER_CONVENTIONS)}")
    return text


def _energy_model(text: str) -> str:
    if text not in ENERGY_MODEL_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r} is not an energy model; choose from "
                                         f"{', '.join(ENERGY_MODEL_NAMES)}")
    return text


def _on_request_models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    wrong = [m for m in models if m not in ON_REQUEST_MODELS]
    if wrong:
        raise argparse.ArgumentTypeError(
            f"{', '.join(wrong)}: only {', '.join(ON_REQUEST_MODELS)} can be asked for (the other energy models, "
            f"{', '.join(m for m in ENERGY_MODEL_NAMES if m not in ON_REQUEST_MODELS)}, are recorded for every trial)")
    return models


def _device_list(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",")]
    if not all(devices):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of devices, e.g. cuda:0,cuda:1")
    return devices


def _study_name(text: str) -> str:
    try:
        return check_study_name(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# The options of each settings dataclass: flag and parser. Help texts come from the dataclass
# docstrings (`nas.settings.settings_help`) and defaults from the fields, so each is written once.
_SETTINGS_FLAGS: dict[type, dict[str, tuple[str, Any]]] = {
    AEBSettings: {"alpha": ("--alpha", float), "beta": ("--beta", float), "e_ref": ("--e-ref", _positive(float))},
    Budgets: {"max_params": ("--max-params", _positive(int)), "max_energy_mj": ("--max-energy-mj", _positive(float))},
    SamplerSettings: {
        "population_size": ("--population-size", _positive(int)),
        "num_parents": ("--num-parents", _positive(int)),
        "crossover_fraction": ("--crossover-fraction", _probability),
        "global_mutation_prob": ("--global-mutation-prob", _probability),
        "block_mutation_prob": ("--block-mutation-prob", _probability),
        "neighbour_mutation": ("--neighbour-mutation", bool),
        "swap_prob": ("--swap-prob", _probability),
        "candidates": ("--candidates", _positive(int)),
        "seed": ("--seed", int),
    },
    EvaluationSettings: {
        "calib_batches": ("--calib-batches", _positive(int)),
        "calib_batch_size": ("--calib-batch-size", _positive(int)),
        "batch_size": ("--eval-batch-size", _positive(int)),
        "profile": ("--energy-profile", str),
        "eval_images": ("--eval-images", _positive(int)),
        "loader_workers": ("--eval-loader-workers", _non_negative_int),
        "early_rejection": ("--early-rejection", bool),
        "rejection_min_images": ("--rejection-min-images", _positive(int)),
        "rejection_confidence": ("--rejection-confidence", _confidence),
        "precision": ("--precision", _precision),
        "first_layer": ("--first-layer", _first_layer),
        "energy_model": ("--energy-model", _energy_model),
        "record_energy_models": ("--record-energy-models", _on_request_models),
        "energy_images": ("--energy-images", _positive(int)),
    },
}


def _add_settings(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    group = parser.add_argument_group(title)
    texts = settings_help(cls)
    for field in dataclasses.fields(cls):
        flag, kind = _SETTINGS_FLAGS[cls][field.name]
        text = texts[field.name].replace("%", "%%")  # argparse formats help with %
        dest = f"{cls.__name__}.{field.name}"
        if kind is bool:
            group.add_argument(flag, dest=dest, action="store_true", help=text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=field.default, metavar=field.name.upper(),
                               help=text)


def _settings(args: argparse.Namespace, cls: type) -> Any:
    return cls(**{f.name: getattr(args, f"{cls.__name__}.{f.name}") for f in dataclasses.fields(cls)})


def _add_storage(p: argparse.ArgumentParser, *, study: bool = True) -> None:
    p.add_argument("--storage", default=None,
                   help=f"storage URL (default: ${STORAGE_ENV} or {DEFAULT_STORAGE}); sqlite:///file.db, "
                        "postgresql://..., mysql+pymysql://..., journal:///abs/file.log")
    if study:
        p.add_argument("--study-name", required=True, type=_study_name, help="name of the study")


def _storage(args: argparse.Namespace) -> str:
    return normalize_url(args.storage or default_storage())


def _progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: bars on a terminal, plain lines elsewhere."""
    return not (args.no_progress or args.quiet)


def _say(args: argparse.Namespace, text: str) -> None:
    """Print a line that tells how a command goes (left out with --quiet)."""
    if not args.quiet:
        print(text, flush=True)


# ----------------------------------------------------------------------------- commands


def cmd_train_supernet(args: argparse.Namespace) -> None:
    from nas.dataspec import DatasetSpec
    from nas.recipes import default_recipe, get_recipe
    from nas.space import default_space, load_space
    from nas.train import metrics_path, torchrun_process_group, train_supernet

    dataset = DatasetSpec(name=args.dataset, root=args.data_root, download=args.download, img_size=args.img_size,
                          frames=args.frames, test_fraction=args.test_fraction)
    space = load_space(args.space or default_space(args.dataset))
    recipe = get_recipe(args.recipe or default_recipe(args.dataset))
    rule = "sandwich" if args.sandwich and args.rule is None else args.rule
    recipe = recipe.replace(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr).with_rule(rule)
    with torchrun_process_group(args.device):
        train_supernet(space, dataset, recipe, args.output, resume=args.resume, seed=args.seed,
                       device=args.device, progress=_progress(args), eval_every=args.eval_every,
                       precision=args.precision)
    print(f"supernet checkpoint: {Path(args.output).resolve()}")
    print(f"per-epoch metrics:   {metrics_path(args.output).resolve()}")


def cmd_create(args: argparse.Namespace) -> None:
    from .study import create

    study = create(
        _storage(args), args.study_name, objective=args.objective, checkpoint=args.checkpoint,
        aeb=_settings(args, AEBSettings), budgets=_settings(args, Budgets), sampler=_settings(args, SamplerSettings),
        evaluation=_settings(args, EvaluationSettings), heartbeat_interval=args.heartbeat_interval,
        enqueue_largest=not args.no_enqueue_largest, skip_if_exists=args.skip_if_exists, device=args.device,
        artifact_dir=args.artifact_dir,
    )
    from .analysis import energy_model_text, format_energy
    from .settings import SETTINGS_ATTR, StudySettings

    settings = StudySettings.from_dict(study.user_attrs[SETTINGS_ATTR])
    ev = settings.evaluation
    print(f"energy model {energy_model_text(ev.energy_model, ev.profile)}, E_ref "
          f"{format_energy(settings.aeb.e_ref)}; every trial records {', '.join(ev.energy_models)}")
    print(f"study '{study.study_name}' ({args.objective}) in {mask_url(_storage(args))}")


def cmd_optimize(args: argparse.Namespace) -> None:
    from .workers import optimize

    if args.n_trials is None and args.timeout is None:
        raise CLIError("give --n-trials and/or --timeout")
    result = optimize(_storage(args), args.study_name, n_trials=args.n_trials, timeout=args.timeout,
                      workers=args.workers, device=args.device, devices=args.devices,
                      progress=_progress(args), verbose=args.verbose)
    _print_optimized(args, args.study_name, result)


def _print_optimized(args: argparse.Namespace, name: str, result: Any) -> None:
    """What `optimize` did, in a line (a warning first if workers died on the way)."""
    if result.nothing_to_do:
        more = result.finished_before + result.n_trials
        print(f"study '{name}' already holds {result.finished_before} finished trials and --n-trials "
              f"{result.n_trials} is the total it should hold: nothing to do (for {result.n_trials} more, give "
              f"--n-trials {more})")
        return
    if result.failures:
        _print_tracebacks(args, result.failures)
        print(f"{PROG}: warning: {result.lost_summary}", file=sys.stderr)
    done = f"{result.finished} finished trials ({result.finished - result.finished_before} new)"
    if result.finished != result.complete:
        done += f", {result.finished - result.complete} of them rejected early"
    print(f"study '{name}': {done}")


def _print_tracebacks(args: argparse.Namespace, failures: Any) -> None:
    """With --verbose, the traceback of each worker that raised an error."""
    if args.verbose:
        for failure in failures:
            if failure.traceback:
                print(f"worker {failure.index} (pid {failure.pid}):\n{failure.traceback}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> None:
    import optuna

    from .storage import open_storage

    summaries = optuna.get_all_study_summaries(open_storage(_storage(args), existing=True),
                                                 include_best_trial=False)
    if not summaries:
        print(f"no studies in {mask_url(_storage(args))}")
        return
    print(f"{'study':24} {'objective':9} {'data set':9} {'trials':>6}  created")
    for s in sorted(summaries, key=lambda s: s.study_name):
        attrs = s.user_attrs
        created = s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-"
        print(f"{s.study_name:24} {attrs.get('objective', '-'):9} {attrs.get('dataset', '-'):9} "
              f"{s.n_trials:>6}  {created}")


def _print_shown(storage: str, name: str, *, top: int, fmt: str, baseline: bool = False,
                 energy_model: str | None = None) -> None:
    from . import analysis
    from .study import load, trials_frame

    study, settings = load(storage, name)
    frame = trials_frame(study, settings)
    if frame.empty:
        raise StudyError(f"study '{name}' has no complete trials yet; run `{PROG} optimize`")
    ev, aeb = settings.evaluation, settings.aeb
    model = energy_model or ev.energy_model
    if model != ev.energy_model:
        try:
            frame, aeb = analysis.under_energy_model(frame, model, aeb)
        except ValueError as err:
            raise StudyError(f"study '{name}': {err}") from None
    shown = analysis.shown_trials(frame, settings.objective, top)
    if baseline:
        shown = analysis.with_baseline_row(shown, frame)
    shown = analysis.mark_choices(shown, frame, settings.objective)
    if fmt in ("json", "csv"):
        # Each row carries what its energy and F_AEB were measured with.
        stored = shown.dropna(axis=1, how="all").assign(
            e_ref_mj=aeb.e_ref, energy_model=model, energy_profile=ev.profile, first_layer=ev.first_layer)
        if fmt == "json":
            print(stored.to_json(orient="records", indent=1, double_precision=15))
        else:
            print(stored.to_csv(index=False), end="")
        return
    what = {"pareto": "Pareto front",
            "pareto3": "3-D Pareto front of accuracy, energy and parameters"}.get(settings.objective,
                                                                                  f"top {top} by F_AEB")
    unit = analysis.energy_unit(frame["energy_mj"])
    searched = "" if model == ev.energy_model else f", re-read from the study's {ev.energy_model} search"
    print(f"{name}: {what} ({settings.dataset.name}, E_ref {analysis.format_energy(aeb.e_ref, unit)}; "
          f"energy model {analysis.energy_model_text(model, ev.profile)}{searched}, first layer {ev.first_layer})")
    print(f"baseline: {_baseline_line(analysis.baseline(frame), unit)}")
    table = analysis.front_table(shown, unit=unit, baseline_columns=baseline)
    print(table.to_string(index=False, formatters=analysis.display_formats(table)))
    print(f"notes: {analysis.KNEE_MARK} = the knee of the front (export --trial knee), {analysis.BEST_MARK} = the "
          f"highest F_AEB (export --trial best)")
    try:
        best = analysis.best_aeb(frame)
    except ValueError as err:
        print(f"best F_AEB: none: {err}")
        return
    print(f"best F_AEB: trial {int(best['number'])} ({100 * best['accuracy']:.2f} %, "
          f"{analysis.format_energy(best['energy_mj'], unit)}, F_AEB {best['f_aeb']:.4f}). "
          f"{analysis.exchange_rate_text(aeb)}")


def _baseline_line(base: Any, unit: tuple[str, float]) -> str:
    """The baseline row of a trials frame (None: not evaluated yet) in one line."""
    from .analysis import format_energy

    if base is None:
        return "the largest subnet has not completed yet"
    line = (f"trial {int(base['number'])}, the largest subnet: {100 * base['accuracy']:.2f} %, "
            f"{format_energy(base['energy_mj'], unit)}")
    if math.isnan(base["ann_energy_mj"]):  # compared with an ANN under the ops energy model only
        return line
    return (f"{line}; as an ANN (E_MAC x dense MACs) {format_energy(base['ann_energy_mj'], unit)}, "
            f"{base['energy_vs_ann']:.3g} x its energy")


def cmd_show(args: argparse.Namespace) -> None:
    _print_shown(_storage(args), args.study_name, top=args.top, fmt=args.format, baseline=args.baseline,
                 energy_model=args.energy_model)


def cmd_plot(args: argparse.Namespace) -> None:
    from .plots import write_report
    from .study import load

    study, settings = load(_storage(args), args.study_name)
    path = write_report(study, settings, args.output, breakdown_trial=args.trial, device=args.device,
                        compare_model=args.compare_energy_model)
    print(f"report: {Path(path).resolve()}")


def _chosen_trial(text: str) -> str | int:
    """``--trial`` of export and finetune: ``best``, ``knee`` or a trial number."""
    if text.isdigit():
        return int(text)
    if text not in ("best", "knee"):
        raise CLIError(f"--trial {text!r}: give best, knee or a trial number")
    return text


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_trial
    from .study import load

    trial = _chosen_trial(args.trial)
    study, settings = load(_storage(args), args.study_name)
    result = export_trial(study, settings, args.output, trial=trial, device=args.device)
    print(json.dumps(result, indent=1, default=str))


def cmd_finetune(args: argparse.Namespace) -> None:
    from .analysis import energy_unit, format_energy
    from .export import finetune_trial
    from .study import load

    trial = _chosen_trial(args.trial)
    study, settings = load(_storage(args), args.study_name)
    # Progress and the summary go to stderr: stdout holds the JSON alone, for a pipe or a file.
    with contextlib.redirect_stdout(sys.stderr):
        result = finetune_trial(study, settings, args.output, trial=trial, epochs=args.epochs, lr=args.lr,
                                resume=args.resume, seed=args.seed, device=args.device, precision=args.precision,
                                progress=_progress(args))
    before = result["finetune"]["inherited"]
    unit = energy_unit([before["test_energy_mj"], result["test_energy_mj"]])
    change = result["test_energy_mj"] / before["test_energy_mj"] - 1
    print(f"trial {result['trial']}: test accuracy {before['test_accuracy']:.2%} inherited -> "
          f"{result['test_accuracy']:.2%} fine-tuned ({result['finetune']['epochs']} epochs); energy "
          f"{format_energy(before['test_energy_mj'], unit)} -> {format_energy(result['test_energy_mj'], unit)} "
          f"({change:+.1%}, {settings.evaluation.energy_model} model: fine-tuning changes the firing rates); "
          f"export: {Path(args.output).resolve()}", file=sys.stderr)
    print(json.dumps(result, indent=1, default=str))


def cmd_delete(args: argparse.Namespace) -> None:
    from .study import delete

    storage = _storage(args)

    def trials(n: int) -> str:
        return f"{n} trial{'' if n == 1 else 's'}"

    def ask(n_trials: int) -> bool:
        if not sys.stdin.isatty():
            raise CLIError(f"not deleting study '{args.study_name}' ({trials(n_trials)}) without --yes: the input "
                           "is not a terminal to ask on")
        try:
            question = f"delete study '{args.study_name}' and its {trials(n_trials)} from {mask_url(storage)}? [y/N] "
            answer = input(question)
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    deleted = delete(storage, args.study_name, confirm=None if args.yes else ask)
    if deleted is None:
        print(f"study '{args.study_name}' kept")
    else:
        print(f"deleted study '{args.study_name}' and its {trials(deleted)} from {mask_url(storage)}")


QUICKSTART_RULE = "uniform"
"""The supernet training rule of ``quickstart`` (``train-supernet`` defaults to ``distill``)."""


def cmd_quickstart(args: argparse.Namespace) -> None:
    from nas.dataspec import DatasetSpec
    from nas.recipes import get_recipe
    from nas.space import load_space
    from nas.train import train_supernet

    from .study import create
    from .workers import optimize

    storage = _storage(args)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "digits-supernet.pt"
    t0 = time.perf_counter()
    _say(args, f"[1/3] training the digits supernet -> {checkpoint}")
    # One subnet per step (the uniform rule), a third of the default distill rule's cost: the
    # quickstart then finishes in about 2 minutes on 2 cores, its largest subnet above 95%.
    recipe = get_recipe("digits").with_rule(QUICKSTART_RULE).replace(epochs=args.epochs)
    train_supernet(load_space("digits"), DatasetSpec("digits"), recipe, checkpoint, resume=True, seed=args.seed,
                   device=args.device, progress=_progress(args))
    _say(args, f"      done in {time.perf_counter() - t0:.0f} s")
    sampler = SamplerSettings(population_size=args.population_size, seed=args.seed)
    for step, objective in enumerate(QUICKSTART_OBJECTIVES, start=2):
        name = f"{args.prefix}-{objective}"
        _say(args, f"[{step}/3] searching study '{name}' ({args.trials} trials)")
        create(storage, name, objective=objective, checkpoint=checkpoint, sampler=sampler, skip_if_exists=True,
               device=args.device)
        result = optimize(storage, name, n_trials=args.trials, timeout=None, device=args.device,
                          progress=_progress(args), verbose=args.verbose)
        if result.nothing_to_do:
            _say(args, f"      study '{name}' already holds {result.finished_before} finished trials")
        if result.failures:
            _print_tracebacks(args, result.failures)
            print(f"{PROG}: warning: {result.lost_summary}", file=sys.stderr)
    for objective in QUICKSTART_OBJECTIVES:
        print()
        _print_shown(storage, f"{args.prefix}-{objective}", top=5, fmt="table", baseline=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s. Browse the studies with:\n\n"
          f"    {_dashboard_command(storage, f'{args.prefix}-pareto')}\n")


def _dashboard_command(storage: str, name: str) -> str:
    """The optuna-dashboard command for a study's storage, serving its artifacts."""
    from .study import load

    folder = load(storage, name)[1].artifact_dir
    return f"optuna-dashboard {mask_url(storage)}" + (f" --artifact-dir {folder}" if folder else "")


# ----------------------------------------------------------------------------- parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help, descriptions as written."""


_VERBOSE_HELP = ("on an error, print its traceback (and each failed worker's) after its line; optimize: "
                 "Optuna's log of every trial")
_QUIET_HELP = "no progress bars or progress lines, only results, warnings and errors"


def _add_verbosity(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=default, help=_VERBOSE_HELP)
    p.add_argument("-q", "--quiet", action="store_true", default=default, help=_QUIET_HELP)


def _subparser(sub: Any, name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=description or text, formatter_class=_HelpFormatter)
    # SUPPRESS: unless given here, the flags keep the values parsed before the command.
    _add_verbosity(p, argparse.SUPPRESS)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("autospk")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The command line; building it imports neither torch nor Optuna."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=_HelpFormatter)
    _add_verbosity(parser, False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = _subparser(sub, "train-supernet", "train a weight-entangled supernet",
                   "Train the supernet of a search space on a data set (by default the sandwich rule with in-place "
                   "distillation: the largest, the smallest and a random subnet per batch, neuron "
                   "genes included); checkpoint after every epoch. Run under torchrun --nproc-per-node N for "
                   "data-parallel training.")
    p.add_argument("--dataset", default="digits", help=f"data set: {', '.join(DATASETS)}")
    p.add_argument("--data-root", default=None,
                   help="folder of the cifar10/cifar100/folder data, or the folder whose download/ holds an event "
                        "data set's files as its publisher distributes them (see the README)")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    p.add_argument("--img-size", type=_positive(int), default=None, help="folder data sets: resize to this size")
    p.add_argument("--frames", type=_positive(int), default=None,
                   help="event data sets: frames integrated per sample (None: the space's largest T); a subnet "
                        "with T steps sums them into T windows of consecutive frames")
    p.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="digits, CIFAR10-DVS and folders without a test/ tree: share held out as the test split")
    p.add_argument("--space", default=None,
                   help=f"search space preset ({', '.join(presets())}) or a .toml file "
                        "(None: digits for digits, dvs-cifar10 for cifar10-dvs, dvs-gesture for dvs128-gesture, "
                        "else paper)")
    p.add_argument("--recipe", default=None,
                   help=f"training recipe ({', '.join(RECIPES)}; None: digits for digits, dvs for event data, "
                        "else cifar)")
    p.add_argument("--epochs", type=_positive(int), default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="override the recipe's batch size")
    p.add_argument("--lr", type=_positive(float), default=None, help="override the recipe's learning rate")
    p.add_argument("--rule", choices=RULES, default=None,
                   help="training rule: uniform (one random subnet per step), sandwich (largest + smallest + "
                        "a random one per step) or distill (the sandwich, the others learning from the largest's "
                        "outputs) (None: the recipe's)")
    p.add_argument("--sandwich", action="store_true", help="the same as --rule sandwich")
    p.add_argument("--precision", type=_precision, default=None,
                   help="fp32, bf16 or fp16 autocast of training and validation; fp16 scales the loss (None: bf16 "
                        "on a GPU that supports it, else fp32)")
    p.add_argument("--eval-every", type=_non_negative_int, default=1, metavar="K",
                   help="score the largest and the smallest subnet on the validation split every K epochs and "
                        "after the last (0: never); written to the checkpoint's history and NAME.metrics.csv")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and subnet draws")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (None: cuda if available)")
    p.add_argument("--output", default="supernet.pt", help="checkpoint path")
    p.add_argument("--resume", action="store_true", help="continue from --output if it exists")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (by default bars on a terminal, else a line per epoch or generation)")
    p.set_defaults(func=cmd_train_supernet)

    p = _subparser(sub, "create", "create a study on a trained supernet",
                   "Create a study; everything a worker needs is stored with it.")
    _add_storage(p)
    p.add_argument("--objective", required=True, choices=OBJECTIVES,
                   help="; ".join(f"{name}: {OBJECTIVE_DESCRIPTIONS[name]}" for name in OBJECTIVES))
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint from train-supernet")
    p.add_argument("--skip-if-exists", action="store_true", help="reuse the study if it exists")
    _add_settings(p, AEBSettings, "F_AEB = Acc x (E/E_ref)^w, w = alpha if E <= E_ref else beta")
    _add_settings(p, Budgets, "budgets (become Optuna constraints)")
    _add_settings(p, SamplerSettings, "sampler (Auto-Spikformer evolution)")
    _add_settings(p, EvaluationSettings, "evaluation")
    p.add_argument("--heartbeat-interval", type=_positive(int), default=HEARTBEAT_INTERVAL,
                   help="database storages: seconds between heartbeats of a running trial")
    p.add_argument("--no-enqueue-largest", action="store_true",
                   help="do not evaluate the largest subnet first (it is the study's baseline)")
    p.add_argument("--artifact-dir", default=None,
                   help="folder of the study's artifacts (each trial's per-layer energy table), writable by every "
                        "worker (None: next to a SQLite or journal file, else next to the checkpoint)")
    p.add_argument("--device", default=None, help="device used to measure E_ref (None: cuda if available)")
    p.set_defaults(func=cmd_create)

    p = _subparser(sub, "optimize", "run trials of a study (many workers allowed)",
                   "Run workers on a study until it holds --n-trials finished trials in all (complete, or "
                   "rejected early with --early-rejection) or --timeout passes. --n-trials is the study's total, "
                   "not a number of trials to add (unlike Optuna's n_trials): a study holding 100 runs 50 more "
                   "with --n-trials 150, and none with --n-trials 50 (it says so). Workers on several hosts "
                   "given the same total against one database storage stop together; running the command "
                   "again after a crash finishes the job. The checkpoint is checked before any worker starts.")
    _add_storage(p)
    p.add_argument("--n-trials", type=_positive(int), default=None,
                   help="finished trials the study should hold in all (not trials to add), complete or (with "
                        "--early-rejection) rejected early")
    p.add_argument("--timeout", type=_positive(float), default=None, help="seconds")
    p.add_argument("--workers", type=_positive(int), default=1,
                   help="worker processes on this host: at most one per CPU core, and as many as its memory holds")
    p.add_argument("--device", default=None,
                   help="where every worker evaluates: cpu, cuda, cuda:1 ... (default: worker i on a host with K "
                        "GPUs uses cuda:(i mod K); the CPU without GPUs)")
    p.add_argument("--devices", type=_device_list, default=None, metavar="D1,D2,...",
                   help="devices dealt out to the workers in turn, e.g. cuda:0,cuda:2 (overrides --device)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress: by default a bar on a terminal with the front size and the best value so "
                        "far, else a line per generation")
    p.set_defaults(func=cmd_optimize)

    p = _subparser(sub, "list", "list the studies in a storage")
    _add_storage(p, study=False)
    p.set_defaults(func=cmd_list)

    p = _subparser(sub, "show", "show the Pareto front (3-D for pareto3) or the best F_AEB trials")
    _add_storage(p)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="output format; json and csv hold the stored values: accuracy as a fraction in [0, 1], "
                        "energies in mJ per image (the table prints percent and a unit that suits the values)")
    p.add_argument("--top", type=_positive(int), default=10, help="aeb studies: rows shown")
    p.add_argument("--baseline", action="store_true",
                   help="add the baseline (the largest subnet, trial 0) as a row if it is not shown, and columns "
                        "against it: accuracy difference in percentage points, energy ratio to the baseline and "
                        "to the same network run as an ANN (E_MAC x dense MACs)")
    p.add_argument("--energy-model", type=_energy_model, default=None,
                   help="read the front under this recorded energy model instead of the study's own, without "
                        "evaluating anything again: ops, loihi and spinnaker2 are recorded for every trial, "
                        "lemaire where the study asked for it")
    p.set_defaults(func=cmd_show)

    p = _subparser(sub, "plot", "write an HTML report with the Pareto figure and more")
    _add_storage(p)
    p.add_argument("--output", default="report.html", help="the HTML file")
    p.add_argument("--trial", type=int, default=None,
                   help="trial of the energy breakdown, read from the table it stored (None: F_AEB best)")
    p.add_argument("--device", default=None,
                   help="where to measure the breakdown of a trial that stored no table (older studies)")
    p.add_argument("--compare-energy-model", type=_energy_model, default=None,
                   help="recorded energy model whose front the report draws beside the study's own (default: ops, "
                        "or loihi for a study searched under ops)")
    p.set_defaults(func=cmd_plot)

    p = _subparser(sub, "export", "export a subnet to run anywhere: weights, config, input transform, test metrics",
                   "Write OUTPUT/subnet.pt (loaded with models.load_exported: the model plus its input transform) "
                   "and OUTPUT/subnet.json: the subnet's config and weights, the raw-input transform of its data set, "
                   "the study and trial, and the accuracy and energy measured on the whole test split.")
    _add_storage(p)
    p.add_argument("--trial", default="best",
                   help="best (F_AEB), knee (of the front, 3-D for pareto3) or a trial number")
    p.add_argument("--output", default="subnet", help="output folder")
    p.add_argument("--device", default=None, help="where to measure")
    p.set_defaults(func=cmd_export)

    p = _subparser(sub, "finetune", "fine-tune a subnet from its inherited weights, then export it",
                   "Train the chosen subnet, extracted from the supernet, on from its inherited weights with the "
                   "supernet's recipe made for fine-tuning (a tenth of its peak learning rate, no warmup, one network "
                   "per step); checkpoint after every epoch (--resume continues), then score it on the test split "
                   "and write an export like `export`, which records the fine-tuning and the inherited scores.")
    _add_storage(p)
    p.add_argument("--trial", default="best",
                   help="best (F_AEB), knee (of the front, 3-D for pareto3) or a trial number")
    p.add_argument("--epochs", type=_positive(int), default=None,
                   help="fine-tuning epochs (None: a tenth of the supernet recipe's, at least 1)")
    p.add_argument("--lr", type=_positive(float), default=None,
                   help="peak learning rate (None: a tenth of the supernet recipe's)")
    p.add_argument("--output", default="finetuned",
                   help="output folder: the export, finetune.pt and finetune.metrics.csv")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/finetune.pt if it exists")
    p.add_argument("--seed", type=int, default=0, help="seed of data order and augmentation")
    p.add_argument("--precision", type=_precision, default=None,
                   help="fp32, bf16 or fp16 autocast of training (None: bf16 on a GPU that supports it, else fp32)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (None: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_finetune)

    p = _subparser(sub, "delete", "delete a study and all its trials",
                   "Delete a study and all its trials, e.g. one whose create was interrupted (a plain "
                   "create of the same name also replaces that one). Stop the study's workers first. Without "
                   "--yes it asks, and refuses when the input is not a terminal.")
    _add_storage(p)
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.set_defaults(func=cmd_delete)

    p = _subparser(sub, "quickstart", "the whole job on digits in one command",
                   "Train the digits supernet, create an aeb and a pareto study in one storage, search both, "
                   "print the results and the optuna-dashboard command. Rerunning continues where it stopped.")
    _add_storage(p, study=False)
    p.add_argument("--workdir", default="autospk-runs", help="where the checkpoint goes")
    p.add_argument("--prefix", default="digits", help="study names: PREFIX-aeb and PREFIX-pareto")
    p.add_argument("--trials", type=_positive(int), default=60, help="trials per study (3 generations of 20)")
    p.add_argument("--epochs", type=_positive(int), default=None, help="supernet epochs (None: the recipe's)")
    p.add_argument("--population-size", type=_positive(int), default=20, help="trials per generation")
    p.add_argument("--seed", type=int, default=0, help="seed of training and search")
    p.add_argument("--device", default=None, help="cpu, cuda ... (None: cuda if available)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (by default bars on a terminal, else a line per epoch or generation)")
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
    from .workers import quiet_optuna

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
