"""The search space: one source of truth for the supernet, the genome and the CLI.

A space is a TOML file with a ``[genes]`` table (a list of choices per gene) and the
supernet settings that do not depend on the data (``patch_size``, ``threshold_scope``).
Presets live in ``nas/spaces/``; ``load_space("paper")`` or ``load_space("my.toml")``.

The Optuna view is a fixed-length genome: one categorical per global gene and one per
block gene for every block up to the maximum depth (``tau_0`` ... ``tau_{L-1}``); genes of
blocks at or beyond the chosen depth are dormant.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import BLOCK_GENES, GLOBAL_GENES, ConfigError, SubnetConfig, SupernetConfig

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import CategoricalDistribution

GENES = GLOBAL_GENES + BLOCK_GENES
"""Every gene name, global genes first."""

SPACES_DIR = Path(__file__).parent / "spaces"

_INT_GENES = ("depth", "embed_dim", "time_steps", "num_heads")
_DEFAULT_NEURON = {"tau": 2.0, "threshold": 1.0}


def presets() -> list[str]:
    """Names of the spaces shipped in ``nas/spaces``."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.toml"))


@dataclass(frozen=True)
class SearchSpace:
    """Choices for every gene, plus the data-independent supernet settings.

    Args:
        name: Preset name or file stem.
        genes: Sorted choices for each gene in `GENES`.
        patch_size: Pixels per token side (one max-pool per halving).
        threshold_scope: Which neurons the threshold gene drives (``mlp`` or ``block``).
        description: One line for humans (CLI help, dashboard notes).
        attention_scale: The constant that scales ``Q K^T V`` (0.125; Spikformer's
            CIFAR10-DVS model uses 0.25).
    """

    name: str
    genes: Mapping[str, tuple[float | int, ...]]
    patch_size: int = 4
    threshold_scope: str = "mlp"
    description: str = ""
    attention_scale: float = 0.125

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def max_depth(self) -> int:
        return int(max(self.genes["depth"]))

    def param_names(self) -> list[str]:
        """The genome's parameter names, in a fixed order."""
        names = list(GLOBAL_GENES)
        for block in range(self.max_depth):
            names += [f"{gene}_{block}" for gene in BLOCK_GENES]
        return names

    def distributions(self) -> dict[str, CategoricalDistribution]:
        """The genome as Optuna distributions."""
        from optuna.distributions import CategoricalDistribution

        return {name: CategoricalDistribution(self.choices(name)) for name in self.param_names()}

    def choices(self, param: str) -> tuple[float | int, ...]:
        """Choices of a genome parameter (``tau_2`` has the choices of ``tau``)."""
        gene = param if param in GENES else param.rsplit("_", 1)[0]
        return tuple(self.genes[gene])

    def config_from_params(self, params: Mapping[str, Any]) -> SubnetConfig:
        """The `SubnetConfig` of a genome (a trial's params)."""
        blocks = {gene: [params[f"{gene}_{b}"] for b in range(self.max_depth)] for gene in BLOCK_GENES}
        return SubnetConfig(**{g: params[g] for g in GLOBAL_GENES}, **blocks)

    def params_from_config(self, config: SubnetConfig) -> dict[str, Any]:
        """The genome of `config`; dormant genes are padded with the first block's value.

        Raises:
            ConfigError: if a gene's value is not one of the space's choices.
        """
        params: dict[str, Any] = {g: getattr(config, g) for g in GLOBAL_GENES}
        for gene in BLOCK_GENES:
            values = list(getattr(config, gene))
            values += [values[0]] * (self.max_depth - len(values))
            params.update({f"{gene}_{b}": values[b] for b in range(self.max_depth)})
        for name, value in params.items():
            if value not in self.choices(name):
                raise ConfigError(
                    f"{name}={value} is not in the space '{self.name}'; choose from {list(self.choices(name))}"
                )
        return params

    def suggest(self, trial: optuna.Trial) -> SubnetConfig:
        """Ask `trial` for every gene of the genome and return its `SubnetConfig`."""
        params = {name: trial.suggest_categorical(name, self.choices(name)) for name in self.param_names()}
        return self.config_from_params(params)

    def sample(self, rng: random.Random) -> SubnetConfig:
        """A uniformly random subnet (every gene drawn independently)."""
        return self.config_from_params({n: rng.choice(self.choices(n)) for n in self.param_names()})

    def _neuron_default(self, gene: str) -> float:
        options = self.genes[gene]
        default = _DEFAULT_NEURON[gene]
        return default if default in options else options[len(options) // 2]

    def largest(self) -> SubnetConfig:
        """The largest subnet: every architecture gene and T at its maximum.

        Its neurons use Spikformer's tau 2 and threshold 1 when the space offers them
        (else the middle choice). Its energy is the default F_AEB reference.
        """
        return SubnetConfig.uniform(
            depth=self.max_depth,
            embed_dim=max(self.genes["embed_dim"]),
            num_heads=max(self.genes["num_heads"]),
            mlp_ratio=max(self.genes["mlp_ratio"]),
            tau=self._neuron_default("tau"),
            threshold=self._neuron_default("threshold"),
            time_steps=max(self.genes["time_steps"]),
        )

    def smallest(self) -> SubnetConfig:
        """The smallest subnet: every architecture gene and T at its minimum."""
        return SubnetConfig.uniform(
            depth=min(self.genes["depth"]),
            embed_dim=min(self.genes["embed_dim"]),
            num_heads=min(self.genes["num_heads"]),
            mlp_ratio=min(self.genes["mlp_ratio"]),
            tau=self._neuron_default("tau"),
            threshold=self._neuron_default("threshold"),
            time_steps=min(self.genes["time_steps"]),
            max_depth=self.max_depth,
        )

    def supernet_config(self, *, in_channels: int, img_size: int, num_classes: int,
                        event_input: bool = False) -> SupernetConfig:
        """The supernet that holds every subnet of this space, for data of this shape (event
        frames with `event_input`)."""
        largest = self.largest()
        return SupernetConfig(
            in_channels=in_channels,
            img_size=img_size,
            patch_size=self.patch_size,
            num_classes=num_classes,
            max_depth=largest.depth,
            max_embed_dim=largest.embed_dim,
            max_num_heads=largest.num_heads[0],
            max_mlp_ratio=largest.mlp_ratio[0],
            tau=largest.tau[0],
            threshold=largest.threshold[0],
            time_steps=largest.time_steps,
            threshold_scope=self.threshold_scope,
            event_input=event_input,
            attention_scale=self.attention_scale,
        )

    def size(self) -> int:
        """Number of distinct architectures (active genes only)."""
        per_block = 1
        for gene in BLOCK_GENES:
            per_block *= len(self.genes[gene])
        total = sum(per_block**d for d in self.genes["depth"])
        return total * len(self.genes["embed_dim"]) * len(self.genes["time_steps"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "patch_size": self.patch_size,
            "threshold_scope": self.threshold_scope,
            "attention_scale": self.attention_scale,
            "genes": {g: list(v) for g, v in self.genes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> SearchSpace:
        """Build a space from a dict (a parsed TOML file or a stored space).

        Raises:
            ConfigError: naming the bad entry and what is allowed.
        """
        data = dict(data)
        name = data.pop("name", name) or "custom"
        allowed = {"description", "patch_size", "threshold_scope", "attention_scale", "genes"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"space '{name}': unknown entries {unknown}; allowed: {sorted(allowed)}")
        genes = data.get("genes")
        if not isinstance(genes, Mapping):
            raise ConfigError(f"space '{name}': missing the [genes] table with choices for {list(GENES)}")
        unknown = sorted(set(genes) - set(GENES))
        missing = [g for g in GENES if g not in genes]
        if unknown:
            raise ConfigError(f"space '{name}': unknown genes {unknown}; allowed: {list(GENES)}")
        if missing:
            raise ConfigError(f"space '{name}': missing genes {missing}")
        parsed = {}
        for gene in GENES:
            values = genes[gene]
            if not isinstance(values, list) or not values:
                raise ConfigError(f"space '{name}': genes.{gene} must be a non-empty list of numbers")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"space '{name}': genes.{gene}={values} must hold numbers only")
            kind = int if gene in _INT_GENES else float
            if kind is int and any(float(v) != int(v) for v in values):
                raise ConfigError(f"space '{name}': genes.{gene}={values} must hold whole numbers")
            parsed[gene] = tuple(sorted({kind(v) for v in values}))
        return cls(
            name=name,
            genes=parsed,
            patch_size=data.get("patch_size", 4),
            threshold_scope=str(data.get("threshold_scope", "mlp")),
            description=str(data.get("description", "")),
            attention_scale=data.get("attention_scale", 0.125),
        )


def _validate(space: SearchSpace) -> None:
    """Rules of a space as a whole; each gene's own range is checked by the configs it builds."""
    where = f"space '{space.name}'"
    for dim in space.genes["embed_dim"]:
        bad = [h for h in space.genes["num_heads"] if dim % h]
        if bad:
            raise ConfigError(
                f"{where}: num_heads {bad} do not divide embed_dim={dim}; every head count must "
                f"divide every embed_dim choice"
            )
    if not isinstance(space.patch_size, int) or isinstance(space.patch_size, bool):
        raise ConfigError(f"{where}: patch_size={space.patch_size!r} must be one whole number, e.g. 4")
    if not isinstance(space.attention_scale, (int, float)) or isinstance(space.attention_scale, bool):
        raise ConfigError(f"{where}: attention_scale={space.attention_scale!r} must be a number, e.g. 0.125")
    try:
        supernet_cfg = space.supernet_config(in_channels=1, img_size=16 * space.patch_size, num_classes=2)
        # The extremes of every gene, in one subnet each: a value out of range anywhere is
        # out of range at its extreme.
        for pick in (min, max):
            extreme = SubnetConfig.uniform(
                depth=pick(space.genes["depth"]), embed_dim=pick(space.genes["embed_dim"]),
                num_heads=pick(space.genes["num_heads"]), mlp_ratio=pick(space.genes["mlp_ratio"]),
                tau=pick(space.genes["tau"]), threshold=pick(space.genes["threshold"]),
                time_steps=pick(space.genes["time_steps"]),
            )
            extreme.validate(supernet_cfg)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


_DEFAULT_SPACES = {"digits": "digits", "cifar10-dvs": "dvs-cifar10", "dvs128-gesture": "dvs-gesture"}


def default_space(dataset: str) -> str:
    """The preset a data set searches unless told otherwise: ``digits`` for digits, ``dvs-cifar10``
    for CIFAR10-DVS, ``dvs-gesture`` for DVS128 Gesture, else ``paper`` (N-MNIST's 32x32 frames
    included)."""
    return _DEFAULT_SPACES.get(dataset, "paper")


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a preset by name (see `presets`) or a TOML file by path.

    Raises:
        ConfigError: for an unknown preset or an invalid file, naming the bad entry.
    """
    path = Path(name_or_path)
    if path.suffix != ".toml":
        if str(name_or_path) not in presets():
            raise ConfigError(f"unknown search space '{name_or_path}'; choose from {presets()} or give a .toml file")
        path = SPACES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"search space file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"search space file {path} is not valid TOML: {err}") from None
    return SearchSpace.from_dict(data, name=path.stem)
