"""Input spike rates of every synaptic layer, measured by hooks during forward passes.

Works on any model made of torch ``Linear``/``Conv1d``/``Conv2d`` layers and spikingjelly
neurons; on `models.Spikformer` it also sees the two products of spiking self-attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from spikingjelly.activation_based.neuron import BaseNode, IFNode, LIFNode, ParametricLIFNode
from torch import nn

from models import AttentionProduct

from .profiles import EnergyProfile, get_profile
from .report import PJ_TO_MJ, EnergyReport, assemble_report, build_report, check_first_layer

SYNAPTIC_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_PENDING_TENSORS = 16
"""Spike tensors held before their sums are taken together (one batched reduction)."""
_BINARY_NEURONS = (IFNode, LIFNode, ParametricLIFNode)
"""Neurons that emit 0 or 1 (a Heaviside step): the sum of their output is its squared L2
norm, which CPUs reduce several times faster than an L1 norm."""
_PIECE = 2**20
"""Elements summed in fp32 at a time: every partial sum of whole numbers up to 16 stays below
2^24, where fp32 holds integers exactly, so the sums are exact (and far faster than float64)."""
_KEPT_PARTIALS = 1024
"""Per-flush sum vectors kept on the device before they are read back to the host at once."""


@dataclass
class _LayerStats:
    kind: str
    elements: int = 0
    call_macs: int = 0
    step_macs: int = 0  # call_macs with a call that serves several steps counted once per step


def _is_dense(x: torch.Tensor) -> bool:
    """Whether `x` fills its memory without gaps or overlaps, in some order of its dimensions
    (read off its sizes and strides, without dispatching an operator)."""
    expected = 1
    for size, stride in sorted((d for d in zip(x.shape, x.stride()) if d[0] != 1), key=lambda d: d[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _dense_pieces(x: torch.Tensor) -> list[torch.Tensor] | None:
    """Views that cover `x` once, each of at most `_PIECE` elements; None for a view that is
    not dense (it has gaps, as Q and V, which are every third channel of the fused Q/K/V spikes)."""
    if not _is_dense(x):
        return None
    if x.numel() <= _PIECE:
        return [x]
    flat = x.permute(sorted(range(x.ndim), key=x.stride, reverse=True)).reshape(-1)  # a view: x is dense
    return list(flat.split(_PIECE))


def _is_spike_count(x: torch.Tensor) -> bool:
    """Non-negative whole numbers: spikes, or sums of spikes on the residual stream."""
    return bool((x >= 0).all()) and bool((x == torch.floor(x)).all())


def _conv_macs(module: nn.Module, out: torch.Tensor, in_channels: int) -> int:
    kernel = 1
    for k in module.kernel_size:
        kernel *= k
    return out.numel() * (in_channels // module.groups) * kernel


@dataclass
class EnergyMonitor:
    """Context manager that records what every synaptic layer computes.

    A layer with an ``energy_kind`` attribute (``"MAC"`` or ``"AC"``) is charged as it
    says. Otherwise a layer whose input is the model's input, or is not made of whole
    non-negative numbers (decided on its first call), is charged at E_MAC for its dense MACs; any other
    is spike-driven and charged at E_AC for its synaptic operations
    ``SOPs = input rate x dense MACs`` (summed over time steps).

    A layer that computes once what serves several steps (`models.Spikformer`'s first conv
    on a static image) says so in ``energy_steps_per_call``; the ``first_layer`` convention
    decides whether that is charged once (``once``) or at every step (``per_step``, as the
    published Spikformer tables count it). Images are counted from the logits, the second
    to last axis of the model's output (``[B, classes]``, or ``[T, B, classes]``).

    Hooks only read tensors: outputs are unchanged, and they are removed on exit. Spike
    counts are summed on the tensors' device, a few tensors at a time in batched reductions,
    in fp32 over pieces of at most 2^20 elements (exact for counts up to 16 per element,
    whatever the tensors' precision; the 0/1 output of IF and LIF neurons as its squared L2
    norm, rounded; views with gaps whole, in float64), and read back by `report` (and after
    every 1024 batched reductions), where the pieces add up in float64:
    measuring adds a few operations per forward, not one per layer, and no host
    synchronisation. A
    layer whose ``energy_parts`` names several sibling layers (our fused Q/K/V projection)
    is reported as those layers, with equal shares of its operations.

    Args:
        model: The network to watch.
        time_steps: T, used to report per-step dense MACs; read from the model's
            ``time_steps`` or ``T`` attribute when not given.
        profile: Energy per operation (see `get_profile`).
        first_layer: ``once`` or ``per_step`` (`FIRST_LAYER_CONVENTIONS`).
    """

    model: nn.Module
    time_steps: int | None = None
    profile: str | EnergyProfile | None = None
    first_layer: str = "once"
    _stats: dict[str, _LayerStats] = field(default_factory=dict, init=False)
    _handles: list = field(default_factory=list, init=False)
    _images: int = field(default=0, init=False)
    _model_input: torch.Tensor | None = field(default=None, init=False)
    # Output elements (neuron updates) of each neuron module, by name; its spikes are counted
    # under the same name.
    _neurons: dict[str, int] = field(default_factory=dict, init=False)
    # Spike tensors waiting to be summed: each with the counters its sum goes to, and whether
    # it holds only 0 and 1.
    _pending: dict[int, tuple[torch.Tensor, list[str], bool]] = field(default_factory=dict, init=False)
    # Device vectors of the sums (L1 norms) or square roots of the sums (L2 norms of 0/1
    # tensors) already taken, and the counters and the kind of each of their entries.
    _partials: list[torch.Tensor] = field(default_factory=list, init=False)
    _partial_keys: list[tuple[tuple[str, ...], bool]] = field(default_factory=list, init=False)
    # Totals already read back to the host (exact: whole numbers in float64).
    _folded: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        check_first_layer(self.first_layer)

    def __enter__(self) -> EnergyMonitor:
        self.reset()
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_input))
        self._handles.append(self.model.register_forward_hook(self._on_model_output))
        for name, module in self.model.named_modules():
            if isinstance(module, SYNAPTIC_LAYERS):
                self._handles.append(module.register_forward_hook(self._layer_hook(name)))
            elif isinstance(module, AttentionProduct):
                self._handles.append(module.register_forward_hook(self._attention_hook(name)))
            elif isinstance(module, BaseNode):
                self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()  # lets go of the spike tensors still held
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._model_input = None

    def reset(self) -> None:
        """Forget everything measured so far."""
        self._stats = {}
        self._images = 0
        self._neurons = {}
        self._pending = {}
        self._partials = []
        self._partial_keys = []
        self._folded = {}

    def _count(self, x: torch.Tensor, key: str, *, binary: bool = False) -> None:
        """Add the sum of `x` to counter `key`, later, with other tensors' sums."""
        entry = self._pending.get(id(x))
        if entry is None:
            self._pending[id(x)] = (x, [key], binary)
            if len(self._pending) >= _PENDING_TENSORS:
                self._flush()
        else:
            entry[1].append(key)
            if binary and not entry[2]:
                self._pending[id(x)] = (x, entry[1], True)

    def _flush(self) -> None:
        """Sum the pending tensors, one batched reduction for each kind of tensor (counts are >= 0).

        Dense tensors are summed in fp32 pieces (0/1 ones as squared L2 norms, others as L1
        norms), where CUDA takes each list in one multi-tensor kernel; views with gaps are
        summed whole, in float64 (on CUDA one kernel each: a foreach kernel takes only dense
        tensors).
        """
        if not self._pending:
            return
        groups: dict[str, tuple[list[torch.Tensor], list]] = {"squares": ([], []), "sums": ([], []),
                                                              "gapped": ([], [])}
        for x, counters, binary in self._pending.values():
            pieces = _dense_pieces(x)
            kind = "gapped" if pieces is None else "squares" if binary else "sums"
            tensors, keys = groups[kind]
            for piece in pieces or [x]:
                tensors.append(piece)
                keys.append((tuple(counters), kind == "squares"))
        self._pending = {}
        norms = []
        with torch.no_grad():
            for kind, (tensors, keys) in groups.items():
                if tensors:
                    norms += torch._foreach_norm(tensors, 2 if kind == "squares" else 1,
                                                 dtype=torch.float64 if kind == "gapped" else torch.float32)
                    self._partial_keys.extend(keys)
            self._partials.append(torch.stack(norms))
        if len(self._partials) >= _KEPT_PARTIALS:
            self._fold()

    def _fold(self) -> None:
        """Read the sums taken so far into the host's totals per counter (one transfer)."""
        values = torch.cat(self._partials).tolist() if self._partials else []  # fp32 sums convert exactly
        for value, (keys, binary) in zip(values, self._partial_keys):
            if binary:  # the L2 norm of a 0/1 piece of at most 2^20 elements: its square rounds exactly
                value = float(round(value * value))
            for key in keys:
                self._folded[key] = self._folded.get(key, 0.0) + value
        self._partials, self._partial_keys = [], []

    def _totals(self) -> dict[str, float]:
        """Every counter's total so far."""
        self._flush()
        self._fold()
        return self._folded

    def _on_model_input(self, module: nn.Module, args: tuple) -> None:
        self._model_input = args[0]

    def _on_model_output(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self._images += out.shape[-2] if out.ndim >= 2 else 1
        self._flush()

    def _record(self, name: str, module: nn.Module, x: torch.Tensor, call_macs: int) -> None:
        stats = self._stats.get(name)
        if stats is None:
            kind = getattr(module, "energy_kind", None)
            if kind is None:
                real = x is self._model_input or not _is_spike_count(x)
                kind = "MAC" if real else "AC"
            stats = self._stats[name] = _LayerStats(kind=kind)
        if stats.kind == "AC":
            self._count(x, name)
            stats.elements += x.numel()
        stats.call_macs += call_macs
        stats.step_macs += call_macs * getattr(module, "energy_steps_per_call", 1)

    def _layer_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = args[0]
            if isinstance(module, nn.Linear):
                macs = out.numel() * x.shape[-1]
            else:
                macs = _conv_macs(module, out, x.shape[1] if x.ndim > 2 else x.shape[0])
            parts = getattr(module, "energy_parts", None)
            if parts is None:
                self._record(name, module, x, macs)
                return
            parent = name.rpartition(".")[0]
            for part in parts:
                self._record(f"{parent}.{part}" if parent else part, module, x, macs // len(parts))

        return hook

    def _attention_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            q, _, v = args[:3]  # [T, B, N, H, D/H]
            tokens = q.shape[2]
            self._record(f"{name}.qk", module, q, q.numel() * tokens)
            self._record(f"{name}.av", module, v, v.numel() * tokens)

        return hook

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            binary = isinstance(module, _BINARY_NEURONS) and getattr(module.surrogate_function, "spiking", True)
            self._count(out, name, binary=binary)
            self._neurons[name] = self._neurons.get(name, 0) + out.numel()

        return hook

    def report(self, *, params: int | None = None, model: str = "ops") -> EnergyReport:
        """Energy per image of everything measured since entering (or `reset`).

        Args:
            params: Parameter count to carry in the report (e.g. of the active subnet).
            model: ``ops`` (priced by `profile`) or a device of `energy.DEVICES`: the same
                measurement, priced per synaptic event, neuron update and spike routed.

        Raises:
            RuntimeError: if no forward pass was recorded.
            ValueError: for a model this measurement cannot price (``lemaire``: see
                `energy.lemaire_energy`).
        """
        return self.reports(params=params, models=(model,))[model]

    def reports(self, *, params: int | None = None, models: tuple[str, ...] = ("ops",)) -> dict[str, EnergyReport]:
        """`report` under several models at once (one read of the counters).

        Raises:
            RuntimeError: if no forward pass was recorded.
            ValueError: for a model this measurement cannot price.
        """
        from .models import DEVICES

        unknown = [m for m in models if m != "ops" and m not in DEVICES]
        if unknown:
            raise ValueError(f"EnergyMonitor prices energy models 'ops' and {sorted(DEVICES)}, not {unknown}")
        if not self._images:
            raise RuntimeError("EnergyMonitor recorded no forward pass: run the model inside `with monitor:`")
        time_steps = int(self.time_steps or getattr(self.model, "time_steps", None) or getattr(self.model, "T", 1))
        totals = self._totals()
        rows = []
        for name, s in self._stats.items():
            rate = totals.get(name, 0.0) / s.elements if s.kind == "AC" and s.elements else float("nan")
            per_image = (s.step_macs if self.first_layer == "per_step" else s.call_macs) / self._images
            dense = per_image / time_steps if s.kind == "AC" else per_image
            ops = rate * per_image if s.kind == "AC" else per_image
            rows.append((name, s.kind, dense, rate, ops))
        updates = sum(self._neurons.values())
        firing = sum(totals.get(name, 0.0) for name in self._neurons) / updates if updates else float("nan")
        profile = get_profile(self.profile)
        common = dict(time_steps=time_steps, firing_rate=firing, params=params, images=self._images,
                      first_layer=self.first_layer)
        out = {}
        for model in models:
            if model == "ops":
                out[model] = build_report(rows, profile, **common)
                continue
            device = DEVICES[model]
            neurons = [(name, "NEURON", n / self._images / time_steps, totals.get(name, 0.0) / n, n / self._images)
                       for name, n in self._neurons.items()]
            layers = pd.DataFrame(rows + neurons, columns=["layer", "kind", "dense_macs", "input_rate", "ops"])
            is_neuron = layers["kind"] == "NEURON"
            spikes = (layers["input_rate"] * layers["ops"]).where(is_neuron, 0.0)
            pj = device.energy_pj(events=layers["ops"].where(~is_neuron, 0.0),
                                  updates=layers["ops"].where(is_neuron, 0.0), spikes=spikes)
            layers["energy_mj"] = pj * PJ_TO_MJ
            out[model] = assemble_report(layers, profile, model=model, **common)
        return out


def measure_energy(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    profile: str | EnergyProfile | None = None,
    time_steps: int | None = None,
    params: int | None = None,
    first_layer: str = "once",
) -> EnergyReport:
    """Run `model` once on `inputs` (no grad) and report its energy per image."""
    with torch.no_grad(), EnergyMonitor(model, time_steps=time_steps, profile=profile,
                                        first_layer=first_layer) as monitor:
        model(inputs)
    return monitor.report(params=params)
