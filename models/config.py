"""Supernet hyper-parameters and the configuration of one subnet.

`SupernetConfig` fixes what the supernet is built for (data shape, maxima, neuron
defaults); `SubnetConfig` picks one architecture inside it. Both are frozen dataclasses
with a JSON round trip so that they can travel through checkpoints and Optuna storages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

THRESHOLD_SCOPES = ("mlp", "block")
"""Which neurons of a block the searched threshold drives.

``mlp``: only the MLP hidden neuron (the authors' code); ``block``: every neuron of the
block except the attention neuron, whose threshold stays at 0.5.
"""

BLOCK_GENES = ("num_heads", "mlp_ratio", "tau", "threshold")
"""Genes that have one value per transformer block."""

GLOBAL_GENES = ("depth", "embed_dim", "time_steps")
"""Genes that have one value for the whole network."""


@dataclass(frozen=True)
class SupernetConfig:
    """What the supernet is built for: the data's shape and the largest subnet.

    Args:
        in_channels: Channels of the input image.
        img_size: Height and width of the (square) input image.
        patch_size: Side of one token in pixels; a power of two, one max-pool per halving.
        num_classes: Classes of the classification head.
        max_depth: Number of transformer blocks of the largest subnet.
        max_embed_dim: Embedding width of the largest subnet.
        max_num_heads: Most attention heads any block may use.
        max_mlp_ratio: Largest MLP expansion ratio.
        tau: Membrane time constant of the largest subnet's neurons.
        threshold: Firing threshold of the largest subnet's searched neurons.
        time_steps: Time steps of the largest subnet.
        threshold_scope: Which neurons the searched threshold drives (`THRESHOLD_SCOPES`).
        event_input: The input is a sequence of event frames (spike counts per pixel and
            polarity, one frame per step) rather than a static image: the first conv then
            runs at every step and is charged as spike-driven.
        attention_scale: The constant that scales ``Q K^T V`` (Spikformer: 0.125; its
            CIFAR10-DVS model: 0.25).
    """

    in_channels: int = 3
    img_size: int = 32
    patch_size: int = 4
    num_classes: int = 10
    max_depth: int = 4
    max_embed_dim: int = 384
    max_num_heads: int = 12
    max_mlp_ratio: float = 4.0
    tau: float = 2.0
    threshold: float = 1.0
    time_steps: int = 4
    threshold_scope: str = "mlp"
    event_input: bool = False
    attention_scale: float = 0.125

    def __post_init__(self) -> None:
        for name in ("in_channels", "img_size", "patch_size", "num_classes", "max_depth",
                     "max_embed_dim", "max_num_heads", "time_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SupernetConfig.{name}={value!r} must be a positive integer")
        if self.patch_size & (self.patch_size - 1) or self.patch_size > 16:
            raise ConfigError(
                f"SupernetConfig.patch_size={self.patch_size} must be one of [1, 2, 4, 8, 16] "
                "(one max-pool per halving, at most four)"
            )
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"SupernetConfig.img_size={self.img_size} is not divisible by "
                f"patch_size={self.patch_size}"
            )
        if self.max_embed_dim % 8:
            raise ConfigError(
                f"SupernetConfig.max_embed_dim={self.max_embed_dim} must be a multiple of 8 "
                "(the stem convs use 1/8, 1/4 and 1/2 of it)"
            )
        if self.max_mlp_ratio <= 0:
            raise ConfigError(f"SupernetConfig.max_mlp_ratio={self.max_mlp_ratio} must be > 0")
        if not 1.0 < self.tau < math.inf:
            raise ConfigError(f"SupernetConfig.tau={self.tau} must be a finite number > 1 (spikingjelly's LIF)")
        if not 0.0 < self.threshold < math.inf:
            raise ConfigError(f"SupernetConfig.threshold={self.threshold} must be a finite number > 0")
        if not 0.0 < self.attention_scale < math.inf:
            raise ConfigError(f"SupernetConfig.attention_scale={self.attention_scale} must be a finite number > 0")
        if self.threshold_scope not in THRESHOLD_SCOPES:
            raise ConfigError(
                f"SupernetConfig.threshold_scope={self.threshold_scope!r}; "
                f"choose from {list(THRESHOLD_SCOPES)}"
            )

    @property
    def num_pools(self) -> int:
        """Max-pools in the patch splitter: one per halving of the image side."""
        return int(math.log2(self.patch_size))

    @property
    def num_tokens(self) -> int:
        """Tokens per image after spiking patch splitting."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def stem_dims(self) -> tuple[int, int, int]:
        """Widths of the first three patch-splitting convs (fixed at the supernet's)."""
        return (self.max_embed_dim // 8, self.max_embed_dim // 4, self.max_embed_dim // 2)

    def largest_subnet(self) -> SubnetConfig:
        """The subnet that uses every weight of the supernet."""
        return SubnetConfig.uniform(
            depth=self.max_depth,
            embed_dim=self.max_embed_dim,
            num_heads=self.max_num_heads,
            mlp_ratio=self.max_mlp_ratio,
            tau=self.tau,
            threshold=self.threshold,
            time_steps=self.time_steps,
            max_depth=self.max_depth,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetConfig:
        return cls(**data)


def _as_tuple(name: str, values: Sequence[Any], kind: type) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"SubnetConfig.{name} must be a list with one value per block, got {values!r}")
    return tuple(kind(v) for v in values)


@dataclass(frozen=True)
class SubnetConfig:
    """One architecture of the supernet, neuron genes included.

    Per-block lists may be longer than `depth` (a fixed-length genome); entries of blocks
    at or beyond `depth` are dormant and do not change `arch_id`.

    Args:
        depth: Number of transformer blocks that run.
        embed_dim: Embedding width D.
        num_heads: Attention heads of each block (must divide D).
        mlp_ratio: MLP hidden width of each block, as a multiple of D.
        tau: Membrane time constant of each block's neurons (> 1).
        threshold: Firing threshold of each block's searched neurons.
        time_steps: Time steps T the network runs for (a static image is shown at every
            step; event frames are integrated into T steps).
    """

    depth: int
    embed_dim: int
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    tau: tuple[float, ...]
    threshold: tuple[float, ...]
    time_steps: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", int(self.depth))
        object.__setattr__(self, "embed_dim", int(self.embed_dim))
        object.__setattr__(self, "time_steps", int(self.time_steps))
        object.__setattr__(self, "num_heads", _as_tuple("num_heads", self.num_heads, int))
        for name in ("mlp_ratio", "tau", "threshold"):
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name), float))

    @classmethod
    def uniform(
        cls,
        *,
        depth: int,
        embed_dim: int,
        num_heads: int,
        mlp_ratio: float,
        tau: float = 2.0,
        threshold: float = 1.0,
        time_steps: int = 4,
        max_depth: int | None = None,
    ) -> SubnetConfig:
        """A subnet whose blocks all share the same genes.

        Args:
            max_depth: Length of the per-block lists (defaults to `depth`).
        """
        n = depth if max_depth is None else max_depth
        return cls(
            depth=depth,
            embed_dim=embed_dim,
            num_heads=(num_heads,) * n,
            mlp_ratio=(mlp_ratio,) * n,
            tau=(tau,) * n,
            threshold=(threshold,) * n,
            time_steps=time_steps,
        )

    def mlp_hidden(self, block: int) -> int:
        """Hidden width of block `block`'s MLP."""
        return int(self.mlp_ratio[block] * self.embed_dim)

    def active_genes(self) -> dict[str, Any]:
        """The genes that shape the network: per-block lists cut to `depth`."""
        genes: dict[str, Any] = {name: getattr(self, name) for name in GLOBAL_GENES}
        for name in BLOCK_GENES:
            genes[name] = list(getattr(self, name)[: self.depth])
        return genes

    def active(self) -> SubnetConfig:
        """The same architecture with dormant genes dropped."""
        return SubnetConfig(**self.active_genes())

    @property
    def arch_id(self) -> str:
        """A short id of the architecture; dormant genes do not change it."""
        text = json.dumps(self.active_genes(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def validate(self, supernet_cfg: SupernetConfig) -> None:
        """Check that this subnet fits `supernet_cfg`.

        Raises:
            ConfigError: naming the field, the block and what is allowed.
        """
        if not 1 <= self.depth <= supernet_cfg.max_depth:
            raise ConfigError(
                f"depth={self.depth} is outside the supernet; choose from 1..{supernet_cfg.max_depth}"
            )
        if not 1 <= self.embed_dim <= supernet_cfg.max_embed_dim:
            raise ConfigError(
                f"embed_dim={self.embed_dim} is above the supernet maximum "
                f"{supernet_cfg.max_embed_dim}; choose from 1..{supernet_cfg.max_embed_dim}"
            )
        if self.time_steps < 1:
            raise ConfigError(f"time_steps={self.time_steps} must be >= 1")
        for name in BLOCK_GENES:
            values = getattr(self, name)
            if len(values) < self.depth:
                raise ConfigError(
                    f"{name} has {len(values)} entries but depth={self.depth} needs one per "
                    f"block (at least {self.depth})"
                )
            if len(values) > supernet_cfg.max_depth:
                raise ConfigError(
                    f"{name} has {len(values)} entries; the supernet has only "
                    f"{supernet_cfg.max_depth} blocks"
                )
        for block in range(self.depth):
            heads = self.num_heads[block]
            if not 1 <= heads <= supernet_cfg.max_num_heads or self.embed_dim % heads:
                allowed = [h for h in range(1, supernet_cfg.max_num_heads + 1) if self.embed_dim % h == 0]
                raise ConfigError(
                    f"num_heads={heads} does not fit embed_dim={self.embed_dim} (block {block}); "
                    f"choose from {allowed}"
                )
            ratio = self.mlp_ratio[block]
            if not 0 < ratio <= supernet_cfg.max_mlp_ratio or self.mlp_hidden(block) < 1:
                raise ConfigError(
                    f"mlp_ratio={ratio} (block {block}) is outside the supernet; choose a value "
                    f"in (0, {supernet_cfg.max_mlp_ratio}]"
                )
            if not 1.0 < self.tau[block] < math.inf:
                raise ConfigError(
                    f"tau={self.tau[block]} (block {block}) must be > 1: a LIF neuron with "
                    "tau <= 1 does not leak, it overshoots"
                )
            if not 0.0 < self.threshold[block] < math.inf:
                raise ConfigError(f"threshold={self.threshold[block]} (block {block}) must be a finite number > 0")

    def to_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v, tuple) else v for name, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubnetConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"unknown SubnetConfig fields {unknown}; allowed: {sorted(fields)}")
        missing = sorted(f for f in fields - set(data) if f != "time_steps")
        if missing:
            raise ConfigError(f"SubnetConfig is missing fields {missing}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> SubnetConfig:
        return cls.from_dict(json.loads(text))


def count_params(supernet_cfg: SupernetConfig, config: SubnetConfig) -> int:
    """Number of parameters of the standalone model of `config` (BN affine included).

    Args:
        supernet_cfg: The supernet the subnet lives in (input channels, stem, classes).
        config: The subnet.

    Returns:
        Weights and biases of every conv, linear and BatchNorm layer.
    """
    d = config.embed_dim
    c0, c1, c2 = supernet_cfg.stem_dims
    total = supernet_cfg.in_channels * c0 * 9 + c0 * c1 * 9 + c1 * c2 * 9 + c2 * d * 9 + d * d * 9
    total += 2 * (c0 + c1 + c2 + d + d)
    for block in range(config.depth):
        h = config.mlp_hidden(block)
        total += 4 * (d * d + d) + 4 * 2 * d
        total += d * h + h + 2 * h + h * d + d + 2 * d
    return total + d * supernet_cfg.num_classes + supernet_cfg.num_classes
