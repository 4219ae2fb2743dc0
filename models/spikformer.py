"""Spikformer (Zhou et al., ICLR 2023) and its weight-entangled supernet.

The network takes static images ``[B, C, H, W]``, shown at every step, or frame sequences
``[B, F, C, H, W]`` (batch first, as a data loader stacks them), whose F frames are integrated
into the subnet's T steps (`integrate_frames`). Tensors inside are multi-step: ``[T, B, C, H, W]``
in the patch splitter and tokens ``[T, B, N, D]`` (channels last) in the transformer blocks.

`Spikformer` is one fixed architecture built from plain torch layers. `SpikformerSupernet`
is the same network at the largest configuration, built from elastic layers, that runs
any `SubnetConfig` after `set_subnet`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from .config import SubnetConfig, SupernetConfig
from .elastic import ElasticBatchNorm1d, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from .neurons import ATTENTION_THRESHOLD, lif, set_lif

ATTENTION_SCALE = 0.125


def integrate_frames(frames: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Batch-first frames ``[B, F, ...]`` as ``time_steps`` steps ``[T, B, ...]``.

    Step t is the sum of frames ``floor(t F / T)`` up to ``floor((t + 1) F / T)`` (excluded):
    every frame counts once, in order, so a subnet with fewer steps than the data has frames
    sees all events, re-integrated into longer windows (exactly F / T frames each when T
    divides F). With T = F the frames are the steps.

    Raises:
        ValueError: if there are fewer frames than steps.
    """
    frame_count = frames.shape[1]
    if frame_count < time_steps:
        raise ValueError(f"{frame_count} frames per sample cannot feed T={time_steps} steps; integrate the data "
                         f"into at least {time_steps} frames (the space's largest T)")
    if frame_count == time_steps:
        return frames.transpose(0, 1)
    bounds = [t * frame_count // time_steps for t in range(time_steps + 1)]
    return torch.stack([frames[:, a:b].sum(dim=1) for a, b in zip(bounds, bounds[1:])])


def _layers(elastic: bool) -> tuple[type, type, type, type]:
    if elastic:
        return ElasticLinear, ElasticConv2d, ElasticBatchNorm1d, ElasticBatchNorm2d
    return nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d


def _linear_bn(linear: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Linear over the channels of ``[..., C]`` tokens, then BatchNorm1d over C."""
    y = linear(x)
    return bn(y.flatten(0, -2)).view(y.shape)


def _lif_steps(node: neuron.LIFNode, x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Run a multi-step neuron on a ``[T*B, ...]`` tensor."""
    return node(x.view(time_steps, -1, *x.shape[1:])).flatten(0, 1)


class SpikingPatchSplitting(nn.Module):
    """SPS: four conv-BN-LIF stages with max-pools, then a relative position embedding.

    The first conv of a static image runs once (with its BN) and the result is repeated over
    the T steps, which gives the same output T times cheaper; it records that on the conv as
    ``energy_steps_per_call`` for energy monitors. Of a sequence, it runs at every step.
    """

    def __init__(
        self,
        in_channels: int,
        stem_dims: tuple[int, int, int],
        embed_dim: int,
        num_pools: int,
        *,
        elastic: bool = False,
    ) -> None:
        super().__init__()
        _, Conv, _, BN = _layers(elastic)
        dims = (in_channels, *stem_dims, embed_dim)
        self.proj_convs = nn.ModuleList(
            Conv(dims[i], dims[i + 1], 3, padding=1, bias=False) for i in range(4)
        )
        self.proj_bns = nn.ModuleList(BN(dims[i + 1]) for i in range(4))
        self.proj_lifs = nn.ModuleList(lif() for _ in range(4))
        self.pooled = tuple(i >= 4 - num_pools for i in range(4))
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.rpe_conv = Conv(embed_dim, embed_dim, 3, padding=1, bias=False)
        self.rpe_bn = BN(embed_dim)
        self.rpe_lif = lif()
        # The activations run channels-last (see `forward`), so their weight gradients come out
        # channels-last: weights in the same layout take them without a copy.
        for conv in (*self.proj_convs, self.rpe_conv):
            conv.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, time_steps: int) -> torch.Tensor:
        """Images ``[B, C, H, W]`` (or a sequence ``[T, B, C, H, W]``) to tokens ``[T, B, N, D]``."""
        # oneDNN convolutions run faster on channels-last activations, and the layout
        # propagates through BN, LIF and pooling.
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
            self.proj_convs[0].energy_steps_per_call = time_steps
            y = self.proj_bns[0](self.proj_convs[0](x))
            y = self.proj_lifs[0](y.unsqueeze(0).expand(time_steps, *y.shape)).flatten(0, 1)
        else:
            time_steps = x.shape[0]
            x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            self.proj_convs[0].energy_steps_per_call = 1
            y = self.proj_bns[0](self.proj_convs[0](x))
            y = _lif_steps(self.proj_lifs[0], y, time_steps)
        for stage in range(4):
            if stage:
                y = _lif_steps(self.proj_lifs[stage], self.proj_bns[stage](self.proj_convs[stage](y)), time_steps)
            if self.pooled[stage]:
                y = self.pool(y)
        y = y + _lif_steps(self.rpe_lif, self.rpe_bn(self.rpe_conv(y)), time_steps)
        tokens = y.flatten(2).transpose(1, 2).contiguous()
        return tokens.view(time_steps, -1, *tokens.shape[1:])


class AttentionProduct(nn.Module):
    """``(Q @ K^T) @ V * scale`` per head, without softmax.

    Takes Q, K and V split into heads, ``[T, B, N, H, D/H]`` each, and returns ``[T, B, N, D]``.
    Q, K and V are binary spikes, so every product is an exact small integer and the
    result does not depend on the association order; the cheaper order is taken
    (``Q @ (K^T @ V)`` when the head width is below the token count).
    A module of its own so that energy monitors can see the spike inputs.
    """

    def __init__(self, scale: float = ATTENTION_SCALE) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t, b, n, h, dh = q.shape
        q, k, v = (z.transpose(2, 3) for z in (q, k, v))
        if dh < n:
            y = q @ (k.transpose(-2, -1) @ v)
        else:
            y = (q @ k.transpose(-2, -1)) @ v
        return (y * self.scale).transpose(2, 3).reshape(t, b, n, h * dh)


QKV_PARTS = ("q", "k", "v")
"""The three projections of spiking self-attention, in the order their channels interleave."""


def interleave_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Q, K and V tensors of the same shape as one, channel by channel along dim 0
    (row ``3c + j`` is channel c of the j-th), the layout of `SpikingSelfAttention`'s
    fused projection."""
    return torch.stack((q, k, v), dim=1).flatten(0, 1)


def separate_qkv_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether `state_dict` holds spiking self-attention in the earlier layout of three Q, K, V chains."""
    return any(f".attn.{QKV_PARTS[0]}_linear." in key for key in state_dict)


class SpikingSelfAttention(nn.Module):
    """SSA: Q, K, V = LIF(BN(Linear(x))); LIF_0.5(Q K^T V * scale); LIF(BN(Linear(.))).

    Q, K and V run as one Linear, one BN and one LIF over ``3 D`` channels (one call each
    instead of three). Their channels interleave (channel c of Q, of K, of V, then channel
    c + 1), so that the first ``3 d`` rows of the supernet's weights are a narrower
    subnet's Q, K and V, as weight entanglement needs. BN and LIF act channel by channel,
    so the results equal three separate chains. State dicts of the earlier layout
    (``q_linear``, ``k_linear``, ``v_linear``, ``q_bn`` ...) load into this one.
    """

    def __init__(self, dim: int, num_heads: int, *, elastic: bool = False, scale: float = ATTENTION_SCALE) -> None:
        super().__init__()
        Linear, _, BN1d, _ = _layers(elastic)
        self.num_heads = num_heads
        self.qkv_linear = Linear(dim, 3 * dim)
        self.qkv_linear.energy_parts = tuple(f"{part}_linear" for part in QKV_PARTS)
        self.qkv_bn = BN1d(3 * dim)
        self.qkv_lif = lif()
        self.attn_product = AttentionProduct(scale)
        self.attn_lif = lif(threshold=ATTENTION_THRESHOLD)
        self.proj_linear = Linear(dim, dim)
        self.proj_bn = BN1d(dim)
        self.proj_lif = lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_lif(_linear_bn(self.qkv_linear, self.qkv_bn, x))
        # Split heads before Q, K and V (views of the contiguous spikes): the backward then
        # gathers their gradients with one stack, without a copy per view.
        q, k, v = qkv.unflatten(-1, (self.num_heads, -1, len(QKV_PARTS))).unbind(-1)
        y = self.attn_lif(self.attn_product(q, k, v))
        return self.proj_lif(_linear_bn(self.proj_linear, self.proj_bn, y))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        for layer, fused in (("linear", "qkv_linear"), ("bn", "qkv_bn")):
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                keys = [f"{prefix}{part}_{layer}.{name}" for part in QKV_PARTS]
                if all(key in state_dict for key in keys):
                    parts = [state_dict.pop(key) for key in keys]
                    fused_value = parts[0] if name == "num_batches_tracked" else interleave_qkv(*parts)
                    state_dict[f"{prefix}{fused}.{name}"] = fused_value
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SpikingMLP(nn.Module):
    """LIF(BN(Linear(D -> hidden))), LIF(BN(Linear(hidden -> D)))."""

    def __init__(self, dim: int, hidden: int, *, elastic: bool = False) -> None:
        super().__init__()
        Linear, _, BN1d, _ = _layers(elastic)
        self.fc1_linear = Linear(dim, hidden)
        self.fc1_bn = BN1d(hidden)
        self.fc1_lif = lif()
        self.fc2_linear = Linear(hidden, dim)
        self.fc2_bn = BN1d(dim)
        self.fc2_lif = lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1_lif(_linear_bn(self.fc1_linear, self.fc1_bn, x))
        return self.fc2_lif(_linear_bn(self.fc2_linear, self.fc2_bn, x))


class SpikformerBlock(nn.Module):
    """x = x + SSA(x); x = x + MLP(x). Residuals add spikes, so x holds small integers."""

    def __init__(self, dim: int, num_heads: int, hidden: int, *, elastic: bool = False,
                 attention_scale: float = ATTENTION_SCALE) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, num_heads, elastic=elastic, scale=attention_scale)
        self.mlp = SpikingMLP(dim, hidden, elastic=elastic)
        # A plain tuple (not registered as submodules): set once, read at every subnet change.
        self._neurons = tuple(m for m in self.modules() if isinstance(m, neuron.LIFNode))

    def set_neurons(self, *, tau: float, threshold: float, scope: str) -> None:
        """Set this block's neuron genes.

        tau drives every neuron of the block. threshold drives the MLP hidden neuron
        (scope ``mlp``) or every neuron but the attention neuron (scope ``block``).
        """
        for node in self._neurons:
            set_lif(node, tau=tau)
        for node in self._neurons if scope == "block" else (self.mlp.fc1_lif,):
            if node is not self.attn.attn_lif:
                set_lif(node, threshold=threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    """A Spikformer of one architecture.

    Args:
        supernet_cfg: Data shape, stem widths and neuron scope (see `SupernetConfig`).
        config: The architecture; defaults to the supernet's largest subnet.
        elastic: Build from elastic layers (used by `SpikformerSupernet`).
    """

    def __init__(
        self,
        supernet_cfg: SupernetConfig,
        config: SubnetConfig | None = None,
        *,
        elastic: bool = False,
    ) -> None:
        super().__init__()
        config = (config or supernet_cfg.largest_subnet()).active()
        config.validate(supernet_cfg)
        Linear, _, _, _ = _layers(elastic)
        self.supernet_cfg = supernet_cfg
        d = config.embed_dim
        self.sps = SpikingPatchSplitting(
            supernet_cfg.in_channels, supernet_cfg.stem_dims, d, supernet_cfg.num_pools, elastic=elastic
        )
        self.blocks = nn.ModuleList(
            SpikformerBlock(d, config.num_heads[i], config.mlp_hidden(i), elastic=elastic,
                            attention_scale=supernet_cfg.attention_scale)
            for i in range(config.depth)
        )
        self.head = Linear(d, supernet_cfg.num_classes)
        self._mark_energy_kinds()
        self._init_weights()
        self._configure(config)

    def _mark_energy_kinds(self) -> None:
        """Tell energy monitors how each synaptic layer is charged.

        The first conv sees the real-valued image (MACs) or, on event data, spike counts
        (ACs); the head sees time-averaged features (MACs); every other layer sees spikes or
        sums of spikes (ACs). How many steps a call of the first conv serves is set per
        forward (``energy_steps_per_call``, see `SpikingPatchSplitting`), for the first-layer
        energy conventions (`energy.FIRST_LAYER_CONVENTIONS`).
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, AttentionProduct)):
                module.energy_kind = "AC"
        self.sps.proj_convs[0].energy_kind = "AC" if self.supernet_cfg.event_input else "MAC"
        self.head.energy_kind = "MAC"

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _configure(self, config: SubnetConfig) -> None:
        self.config = config
        for i in range(config.depth):
            block = self.blocks[i]
            block.attn.num_heads = config.num_heads[i]
            block.set_neurons(
                tau=config.tau[i], threshold=config.threshold[i], scope=self.supernet_cfg.threshold_scope
            )

    @property
    def time_steps(self) -> int:
        return self.config.time_steps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` or frames ``[B, F, C, H, W]`` to features ``[B, D]`` (mean
        over tokens, then time).

        Raises:
            ValueError: for a static image into an event-input network, or too few frames.
        """
        if x.ndim == 5:
            x = integrate_frames(x, self.time_steps)
        elif self.supernet_cfg.event_input:
            raise ValueError(f"this network reads event frames [B, F, C, H, W], got a tensor of shape "
                             f"{tuple(x.shape)}")
        x = self.sps(x, self.time_steps)
        for block in self.blocks[: self.config.depth]:
            x = block(x)
        return x.mean(dim=2).mean(dim=0)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, classes]`` of images or frame sequences (see `forward_features`);
        neuron state is reset after every call."""
        try:
            return self.forward_head(self.forward_features(x))
        finally:
            functional.reset_net(self)


class SpikformerSupernet(Spikformer):
    """The weight-entangled supernet: one set of weights for every subnet.

    Call `set_subnet` (or use the `subnet` context) to choose the architecture that the
    next forward passes run.
    """

    def __init__(self, supernet_cfg: SupernetConfig) -> None:
        super().__init__(supernet_cfg, supernet_cfg.largest_subnet(), elastic=True)

    def set_subnet(self, config: SubnetConfig) -> None:
        """Run `config` from now on.

        Setting the subnet that already runs does nothing.

        Raises:
            ValueError: if `config` does not fit this supernet.
        """
        if config == self.config:
            return
        config.validate(self.supernet_cfg)
        config = config.active()
        if config == self.config:
            return
        d = config.embed_dim
        self.sps.proj_convs[3].active_out = d
        self.sps.rpe_conv.active_out = d
        for i in range(config.depth):
            attn, mlp = self.blocks[i].attn, self.blocks[i].mlp
            attn.qkv_linear.active_out = len(QKV_PARTS) * d
            for linear in (attn.proj_linear, mlp.fc2_linear):
                linear.active_out = d
            mlp.fc1_linear.active_out = config.mlp_hidden(i)
        self._configure(config)

    @contextmanager
    def subnet(self, config: SubnetConfig) -> Iterator[SpikformerSupernet]:
        """Run `config` inside the block, then restore the previous subnet."""
        previous = self.config
        self.set_subnet(config)
        try:
            yield self
        finally:
            self.set_subnet(previous)
