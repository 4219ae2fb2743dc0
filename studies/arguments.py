"""The command line's building blocks: argument types, the settings dataclasses as option
groups, and the options several commands share. Nothing here imports torch or Optuna, so
that ``--help`` stays fast."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from models import ConfigError
from nas.fitness import AEBSettings
from nas.settings import (
    ENERGY_MODEL_NAMES,
    FIRST_LAYER_CONVENTIONS,
    ON_REQUEST_MODELS,
    PRECISIONS,
    Budgets,
    EvaluationSettings,
    SamplerSettings,
    settings_help,
)

from .settings import autospk_version, check_study_name
from .storage import DEFAULT_STORAGE, STORAGE_ENV


def number(kind: type, ok: Callable[[Any], bool], requirement: str) -> Callable[[str], Any]:
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


def positive(kind: type) -> Callable[[str], Any]:
    return number(kind, lambda v: v > 0, "> 0")


non_negative_int = number(int, lambda v: v >= 0, ">= 0")
confidence = number(float, lambda v: 0.0 < v < 1.0, "a level in (0, 1), e.g. 0.99")
probability = number(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")
fraction = number(float, lambda v: 0.0 < v < 1.0, "a fraction in (0, 1), e.g. 0.2")


def on_request_models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    wrong = [m for m in models if m not in ON_REQUEST_MODELS]
    if wrong:
        raise argparse.ArgumentTypeError(
            f"{', '.join(wrong)}: only {', '.join(ON_REQUEST_MODELS)} can be asked for (the other energy models, "
            f"{', '.join(m for m in ENERGY_MODEL_NAMES if m not in ON_REQUEST_MODELS)}, are recorded for every trial)")
    return models


def device_list(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",")]
    if not all(devices):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of devices, e.g. cuda:0,cuda:1")
    return devices


def study_name(text: str) -> str:
    try:
        return check_study_name(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# The options of each settings dataclass: flag and parser (a tuple: the allowed values). Help texts
# come from the dataclass docstrings (`nas.settings.settings_help`) and defaults from the fields,
# so each is written once.
_SETTINGS_FLAGS: dict[type, dict[str, tuple[str, Any]]] = {
    AEBSettings: {"alpha": ("--alpha", float), "beta": ("--beta", float), "e_ref": ("--e-ref", positive(float))},
    Budgets: {"max_params": ("--max-params", positive(int)), "max_energy_mj": ("--max-energy-mj", positive(float))},
    SamplerSettings: {
        "population_size": ("--population-size", positive(int)),
        "num_parents": ("--num-parents", positive(int)),
        "crossover_fraction": ("--crossover-fraction", probability),
        "global_mutation_prob": ("--global-mutation-prob", probability),
        "block_mutation_prob": ("--block-mutation-prob", probability),
        "neighbour_mutation": ("--neighbour-mutation", bool),
        "swap_prob": ("--swap-prob", probability),
        "candidates": ("--candidates", positive(int)),
        "seed": ("--seed", int),
    },
    EvaluationSettings: {
        "calib_batches": ("--calib-batches", positive(int)),
        "calib_batch_size": ("--calib-batch-size", positive(int)),
        "batch_size": ("--eval-batch-size", positive(int)),
        "profile": ("--energy-profile", str),
        "eval_images": ("--eval-images", positive(int)),
        "loader_workers": ("--eval-loader-workers", non_negative_int),
        "early_rejection": ("--early-rejection", bool),
        "rejection_min_images": ("--rejection-min-images", positive(int)),
        "rejection_confidence": ("--rejection-confidence", confidence),
        "precision": ("--precision", PRECISIONS),
        "first_layer": ("--first-layer", FIRST_LAYER_CONVENTIONS),
        "energy_model": ("--energy-model", ENERGY_MODEL_NAMES),
        "record_energy_models": ("--record-energy-models", on_request_models),
        "energy_images": ("--energy-images", positive(int)),
    },
}


def add_settings(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    group = parser.add_argument_group(title)
    texts = settings_help(cls)
    for field in dataclasses.fields(cls):
        flag, kind = _SETTINGS_FLAGS[cls][field.name]
        text = texts[field.name].replace("%", "%%")  # argparse formats help with %
        dest = f"{cls.__name__}.{field.name}"
        if kind is bool:
            group.add_argument(flag, dest=dest, action="store_true", help=text)
        elif isinstance(kind, tuple):
            group.add_argument(flag, dest=dest, choices=kind, default=field.default, help=text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=field.default, metavar=field.name.upper(),
                               help=text)


def add_storage(p: argparse.ArgumentParser, *, study: bool = True) -> None:
    p.add_argument("--storage", default=None,
                   help=f"storage URL (default: ${STORAGE_ENV} or {DEFAULT_STORAGE}); sqlite:///file.db, "
                        "postgresql://..., mysql+pymysql://..., journal:///abs/file.log")
    if study:
        p.add_argument("--study-name", required=True, type=study_name, help="name of the study")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help, descriptions as written."""


_VERBOSE_HELP = ("on an error, print its traceback (and each failed worker's) after its line; optimize: "
                 "Optuna's log of every trial")
_QUIET_HELP = "no progress bars or progress lines, only results, warnings and errors"


def add_device(p: argparse.ArgumentParser, text: str = "cpu, cuda, cuda:1 ... (None: cuda if available)") -> None:
    p.add_argument("--device", default=None, help=text)


def add_no_progress(p: argparse.ArgumentParser,
                    text: str = "no progress (by default bars on a terminal, else a line per epoch or generation)"
                    ) -> None:
    p.add_argument("--no-progress", action="store_true", help=text)


def add_precision(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=None, help=text)


def add_energy_model(p: argparse.ArgumentParser, flag: str, text: str) -> None:
    p.add_argument(flag, choices=ENERGY_MODEL_NAMES, default=None, help=text)


def add_verbosity(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=default, help=_VERBOSE_HELP)
    p.add_argument("-q", "--quiet", action="store_true", default=default, help=_QUIET_HELP)


def subparser(sub: Any, name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=description or text, formatter_class=HelpFormatter)
    # SUPPRESS: unless given here, the flags keep the values parsed before the command.
    add_verbosity(p, argparse.SUPPRESS)
    return p


def version() -> str:
    """The installed autospk's version."""
    return autospk_version()
