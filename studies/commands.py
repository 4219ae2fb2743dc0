"""What each ``autospk-study`` command does and prints.

The parser (`studies.cli`) hands each command its parsed arguments. Commands import the
heavy libraries (torch, Optuna, pandas) inside their bodies, so that ``--help`` and the
parser start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from nas.fitness import AEBSettings
from nas.settings import (
    Budgets,
    EvaluationSettings,
    SamplerSettings,
)

from .errors import StudyError
from .storage import (
    default_storage,
    mask_url,
    normalize_url,
)

PROG = "autospk-study"


QUICKSTART_OBJECTIVES = ("aeb", "pareto")
"""The studies `quickstart` searches: the paper's F_AEB and its (accuracy, energy) trade-off."""


class CLIError(Exception):
    """A bad command line: printed as one line, exit status 2."""


def _settings(args: argparse.Namespace, cls: type) -> Any:
    return cls(**{f.name: getattr(args, f"{cls.__name__}.{f.name}") for f in dataclasses.fields(cls)})


def _storage(args: argparse.Namespace) -> str:
    return normalize_url(args.storage or default_storage())


def _progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: bars on a terminal, plain lines elsewhere."""
    return not (args.no_progress or args.quiet)


def _say(args: argparse.Namespace, text: str) -> None:
    """Print a line that tells how a command goes (left out with --quiet)."""
    if not args.quiet:
        print(text, flush=True)


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
        max_retries=args.max_retries,
        enqueue_largest=not args.no_enqueue_largest, skip_if_exists=args.skip_if_exists, device=args.device,
        artifact_dir=args.artifact_dir,
    )
    from .formatting import energy_model_text, format_energy
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
    from . import analysis, formatting
    from .results import given_up, trials_frame
    from .study import load

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
    unit = formatting.energy_unit(frame["energy_mj"])
    searched = "" if model == ev.energy_model else f", re-read from the study's {ev.energy_model} search"
    print(f"{name}: {what} ({settings.dataset.name}, E_ref {formatting.format_energy(aeb.e_ref, unit)}; "
          f"energy model {formatting.energy_model_text(model, ev.profile)}{searched}, first layer {ev.first_layer})")
    print(f"baseline: {_baseline_line(analysis.baseline(frame), unit)}")
    table = formatting.front_table(shown, unit=unit, baseline_columns=baseline)
    print(table.to_string(index=False, formatters=formatting.display_formats(table)))
    print(f"notes: {formatting.KNEE_MARK} = the knee of the front (export --trial knee), {formatting.BEST_MARK} = the "
          f"highest F_AEB (export --trial best)")
    for failed in given_up(study):
        print(f"failed for good: trial {failed.number} ({failed.arch_id}) after {failed.tries} tries: {failed.cause}")
    try:
        best = analysis.best_aeb(frame)
    except ValueError as err:
        print(f"best F_AEB: none: {err}")
        return
    print(f"best F_AEB: trial {int(best['number'])} ({100 * best['accuracy']:.2f} %, "
          f"{formatting.format_energy(best['energy_mj'], unit)}, F_AEB {best['f_aeb']:.4f}). "
          f"{formatting.exchange_rate_text(aeb)}")


def _baseline_line(base: Any, unit: tuple[str, float]) -> str:
    """The baseline row of a trials frame (None: not evaluated yet) in one line."""
    from .formatting import format_energy

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
    from .report import write_report
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
    from .export import finetune_trial
    from .formatting import energy_unit, format_energy
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


QUICKSTART_EVAL_EVERY = 5
"""Epochs between the quickstart's validations of its supernet (each scores two subnets)."""
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
    # One subnet per step (the uniform rule), a third of the default distill rule's cost, and the
    # largest and smallest subnets validated every QUICKSTART_EVAL_EVERY epochs (and after the
    # last): the quickstart then finishes in about 2 minutes on 2 cores, its largest subnet above 95%.
    recipe = get_recipe("digits").with_rule(QUICKSTART_RULE).replace(epochs=args.epochs)
    train_supernet(load_space("digits"), DatasetSpec("digits"), recipe, checkpoint, resume=True, seed=args.seed,
                   device=args.device, progress=_progress(args), eval_every=QUICKSTART_EVAL_EVERY)
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
