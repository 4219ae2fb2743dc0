"""The supernet dispatches few operators per step, with the same results as before.

Each cut of issue 22 has a test that fails without it: the fused neuron runs under bf16 and
fp16, the full-size subnet slices nothing, Q/K/V run as one chain equal to three, changing to
the running subnet does nothing, and the energy monitor takes its sums in batches.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter

import pytest
import torch
from spikingjelly._ops.lif import reference as lif_reference
from spikingjelly.activation_based import functional, surrogate
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import energy.monitor
from energy import EnergyMonitor, dense_macs
from models import ConfigError, SpikformerSupernet, SubnetConfig
from models.neurons import lif
from models.spikformer import AttentionProduct, SpikingSelfAttention, interleave_qkv
from nas.precision import autocast

CPU = torch.device("cpu")


@pytest.fixture
def python_loop_calls(monkeypatch) -> list[torch.dtype]:
    """The input dtypes of every call of spikingjelly's Python-loop LIF (its fallback)."""
    calls: list[torch.dtype] = []
    original = lif_reference.multi_step

    def spy(x_seq, *args, **kwargs):
        calls.append(x_seq.dtype)
        return original(x_seq, *args, **kwargs)

    monkeypatch.setattr(lif_reference, "multi_step", spy)
    return calls


def test_the_spy_sees_spikingjellys_own_lif_fall_back_under_bf16(python_loop_calls):
    node = sj_neuron.LIFNode(tau=2.0, detach_reset=True, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                             step_mode="m")
    with autocast(CPU, "bf16"):
        node(torch.rand(3, 2, 5).bfloat16())
    assert python_loop_calls == [torch.bfloat16]


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_the_fused_neuron_runs_in_every_precision_and_spikes_stay_binary(tiny_supernet_cfg, python_loop_calls,
                                                                        precision, dtype):
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(4, 1, 8, 8) * 3
    spikes = []
    handles = [m.register_forward_hook(lambda m, a, out: spikes.append(out)) for m in net.modules()
               if isinstance(m, sj_neuron.BaseNode)]
    with autocast(CPU, precision):
        loss = net(x).float().logsumexp(-1).mean()
    loss.backward()
    for handle in handles:
        handle.remove()
    assert python_loop_calls == []
    assert spikes and any(s.dtype == dtype for s in spikes)
    assert all(((s == 0) | (s == 1)).all() for s in spikes)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_fp32_membrane_state_leaves_fp32_spikes_bit_identical_to_spikingjellys_lif():
    ours = lif(tau=1.25, threshold=0.6)
    theirs = sj_neuron.LIFNode(tau=1.25, v_threshold=0.6, v_reset=0.0, decay_input=True, detach_reset=True,
                               surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m")
    x = torch.randn(5, 3, 7, requires_grad=True)
    got, expected = ours(x), theirs(x)
    assert torch.equal(got, expected) and 0 < got.mean() < 1
    (grad_ours,) = torch.autograd.grad(got.sum(), x)
    (grad_theirs,) = torch.autograd.grad(expected.sum(), x)
    assert torch.equal(grad_ours, grad_theirs)


def _graph_nodes(output: torch.Tensor) -> Counter:
    seen, stack, names = set(), [output.grad_fn], Counter()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names[type(node).__name__] += 1
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def test_the_largest_subnet_uses_the_parameters_unsliced(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(2, 1, 8, 8) * 3
    largest = _graph_nodes(net(x))
    assert not {name for name in largest if "Slice" in name or "Narrow" in name}, largest
    net.set_subnet(SubnetConfig.uniform(depth=2, embed_dim=16, num_heads=2, mlp_ratio=2.0, time_steps=2,
                                        max_depth=tiny_supernet_cfg.max_depth))
    narrower = _graph_nodes(net(x))
    assert any("Slice" in name or "Narrow" in name for name in narrower)  # the check above can see slices


def _ssa_with_stats(dim: int, heads: int) -> SpikingSelfAttention:
    torch.manual_seed(3)
    ssa = SpikingSelfAttention(dim, heads, scale=1.0)  # enough drive for the attention neuron to fire
    with torch.no_grad():
        for module in ssa.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(std=0.5)
                module.bias.normal_(std=0.2)
            if isinstance(module, nn.BatchNorm1d):  # enough drive for every neuron to fire
                module.weight.uniform_(1.5, 3.0)
                module.bias.normal_(mean=0.5, std=0.2)
                module.running_mean.normal_(std=0.3)
                module.running_var.uniform_(0.5, 2.0)
    return ssa


def _three_chains(ssa: SpikingSelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, list, list]:
    """Spiking self-attention computed the way it was before the fusion: Q, K and V each one
    Linear, one BN and one LIF, cut out of the fused layers' interleaved rows. Returns the
    output, the Q, K and V spikes and the three BNs."""
    dim = x.shape[-1]
    qkv, bns = [], []
    for part in range(3):
        linear, bn = nn.Linear(dim, dim), nn.BatchNorm1d(dim)
        with torch.no_grad():
            linear.weight.copy_(ssa.qkv_linear.weight[part::3])
            linear.bias.copy_(ssa.qkv_linear.bias[part::3])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(ssa.qkv_bn, name)[part::3])
        bn.train(ssa.training)
        bns.append(bn)
        y = linear(x)
        qkv.append(lif()(bn(y.flatten(0, -2)).view(y.shape)))
    t, b, n, _ = x.shape
    heads = [z.view(t, b, n, ssa.num_heads, -1) for z in qkv]
    y = ssa.attn_lif(AttentionProduct(ssa.attn_product.scale)(*heads))
    y = ssa.proj_linear(y)
    return ssa.proj_lif(ssa.proj_bn(y.flatten(0, -2)).view(y.shape)), qkv, bns


@pytest.mark.parametrize("train", [True, False])
def test_fused_qkv_equals_three_chains_bit_for_bit(train):
    ssa = _ssa_with_stats(dim=12, heads=3).train(train)
    x = (torch.rand(2, 3, 8, 12) < 0.4).float() * torch.randint(1, 3, (2, 3, 8, 12))  # sums of spikes
    reference = copy.deepcopy(ssa)
    spikes = []
    ssa.qkv_lif.register_forward_hook(lambda m, a, out: spikes.append(out))
    got = ssa(x)
    expected, (q, k, v), bns = _three_chains(reference, x)
    functional.reset_net(ssa), functional.reset_net(reference)
    assert torch.equal(got, expected) and 0 < got.mean() < 1
    assert torch.equal(spikes[0], torch.stack((q, k, v), dim=-1).flatten(-2))
    if train:  # the running statistics moved the same way too
        for name in ("running_mean", "running_var"):
            fused = getattr(ssa.qkv_bn, name)
            assert torch.equal(fused, interleave_qkv(*(getattr(bn, name) for bn in bns)))


def _three_chain_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` as the model before the fusion saved it: q_linear, k_linear, v_linear, q_bn ..."""
    legacy = {}
    for key, value in state_dict.items():
        head, fused, tail = key.partition(".qkv_")
        if not fused:
            legacy[key] = value
            continue
        layer, name = tail.split(".")
        for part, letter in enumerate("qkv"):
            legacy[f"{head}.{letter}_{layer}.{name}"] = value if name == "num_batches_tracked" else value[part::3]
    assert any(".q_linear.weight" in key for key in legacy) and not any(".qkv_" in key for key in legacy)
    return legacy


def test_state_dicts_of_the_three_chain_layout_load_into_the_fused_one(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(3, 1, 8, 8) * 3
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.normal_(std=0.3)
        expected = net(x)
    fresh = SpikformerSupernet(tiny_supernet_cfg).eval()
    fresh.load_state_dict(_three_chain_layout(net.state_dict()))
    with torch.no_grad():
        assert torch.equal(fresh(x), expected)


def test_an_earlier_checkpoint_serves_a_search_but_refuses_to_resume_training(digits_checkpoint, digits_data,
                                                                              tmp_path):
    from nas import DatasetSpec, load_checkpoint
    from nas.checkpoint import save_checkpoint
    from nas.train import train_supernet
    from tests.conftest import DIGITS_RECIPE

    ckpt = load_checkpoint(digits_checkpoint.path)
    old = tmp_path / "old.pt"
    save_checkpoint(old, dataclasses.replace(ckpt, model=_three_chain_layout(ckpt.model)))
    x = digits_data.train[0][0].unsqueeze(0).repeat(4, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(old).build_supernet()(x), digits_checkpoint.load()(x))
    with pytest.raises(ConfigError, match="before spiking self-attention fused Q, K and V"):
        train_supernet(digits_checkpoint.space, DatasetSpec("digits"), DIGITS_RECIPE, old, resume=True,
                       data=digits_data, device="cpu", progress=False)


def test_energy_still_reports_q_k_and_v_as_three_layers(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    cfg = tiny_supernet_cfg.largest_subnet()
    x = torch.rand(4, 1, 8, 8) * 3
    with torch.no_grad(), EnergyMonitor(net) as monitor:
        net(x)
    layers = monitor.report().layers.set_index("layer")
    qkv = layers.loc[[f"blocks.0.attn.{p}_linear" for p in "qkv"]]
    assert qkv["input_rate"].nunique() == 1 and qkv["dense_macs"].nunique() == 1
    analytic = dense_macs(tiny_supernet_cfg, cfg).layers.set_index("layer")["dense_macs"]
    assert layers["dense_macs"].to_dict() == pytest.approx(analytic.to_dict())


def test_setting_the_running_subnet_again_does_nothing_and_a_change_walks_no_modules(tiny_supernet_cfg,
                                                                                     monkeypatch):
    net = SpikformerSupernet(tiny_supernet_cfg)
    other = SubnetConfig.uniform(depth=2, embed_dim=24, num_heads=2, mlp_ratio=2.5, tau=1.25, threshold=1.4,
                                 time_steps=3, max_depth=tiny_supernet_cfg.max_depth)
    walks = []
    original_modules = nn.Module.modules
    monkeypatch.setattr(nn.Module, "modules", lambda self: walks.append(self) or original_modules(self))
    configured = []
    monkeypatch.setattr(type(net), "_configure", lambda self, cfg: configured.append(cfg))
    net.set_subnet(tiny_supernet_cfg.largest_subnet())
    assert configured == []
    monkeypatch.undo()
    monkeypatch.setattr(nn.Module, "modules", lambda self: walks.append(self) or original_modules(self))
    net.set_subnet(other)
    assert walks == []
    assert {block.mlp.fc1_lif.v_threshold for block in net.blocks[:2]} == {1.4}
    assert {node.tau for block in net.blocks[:2] for node in block._neurons} == {1.25}


class _Dispatched(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def test_the_energy_monitor_adds_far_fewer_operators_than_it_watches_layers(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(4, 1, 8, 8) * 3
    with torch.no_grad():
        net(x)
        with _Dispatched() as plain:
            net(x)
        with EnergyMonitor(net) as monitor, _Dispatched() as measured:
            net(x)
    watched = len(monitor.report().layers) + sum(isinstance(m, sj_neuron.BaseNode) for m in net.modules())
    extra = measured.ops - plain.ops
    # One sum per watched tensor would be `watched` operators or more; a batch of 16 takes one
    # reduction per kind of tensor (at most three) and a stack; the report one read.
    assert 0 < extra <= 4 * math.ceil(watched / energy.monitor._PENDING_TENSORS) + 2, (extra, watched)


def test_folding_the_monitors_partial_sums_changes_no_figure(tiny_supernet_cfg, monkeypatch):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    batches = [torch.rand(3, 1, 8, 8) * 3 for _ in range(4)]

    def measured():
        with torch.no_grad(), EnergyMonitor(net) as monitor:
            for x in batches:
                net(x)
        return monitor.report()

    expected = measured()
    monkeypatch.setattr(energy.monitor, "_KEPT_PARTIALS", 2)
    got = measured()
    assert got.energy_mj == expected.energy_mj and got.firing_rate == expected.firing_rate
    assert got.layers.equals(expected.layers)
    assert 0 < got.firing_rate < 1


class _Doubled(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x  # whole numbers, not 0/1: summed as an L1 norm


def test_spike_counts_stay_exact_over_pieces_of_large_tensors_in_both_kinds_of_sum():
    spiking = lif(threshold=0.5)
    model = nn.Sequential(spiking, _Doubled(), nn.Linear(64, 3))
    x = torch.rand(4, 13_000, 64) * 1.2  # 3.3 M elements per tensor: four pieces each
    outputs = {}
    spiking.register_forward_hook(lambda m, a, out: outputs.__setitem__("spikes", out))
    with torch.no_grad(), EnergyMonitor(model, time_steps=4) as monitor:
        model(x)
    report = monitor.report()
    spikes = outputs["spikes"]
    assert spikes.numel() > 3 * energy.monitor._PIECE and 0.2 < spikes.mean() < 0.8
    exact = spikes.sum(dtype=torch.float64).item()
    assert report.firing_rate == exact / spikes.numel()
    assert report.layers.set_index("layer").loc["2", "input_rate"] == 2 * exact / spikes.numel()


def test_dense_tensors_split_into_pieces_that_cover_them_once_and_views_with_gaps_do_not():
    from energy.monitor import _dense_pieces

    channels_last = torch.arange(2 * 3 * 700 * 800, dtype=torch.float32).view(2, 3, 700, 800)
    channels_last = channels_last.contiguous(memory_format=torch.channels_last)
    for x, count in ((channels_last, 4), (channels_last.transpose(2, 3), 4), (torch.rand(10), 1)):
        pieces = _dense_pieces(x)
        assert len(pieces) == count and all(p.numel() <= energy.monitor._PIECE for p in pieces)
        assert sum(p.sum(dtype=torch.float64) for p in pieces) == x.sum(dtype=torch.float64)
    assert _dense_pieces(torch.rand(3, 800, 900, 3)[..., 1]) is None


def test_q_and_v_views_of_the_fused_spikes_are_counted_exactly(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(4, 1, 8, 8) * 3
    seen = {}
    net.blocks[0].attn.attn_product.register_forward_hook(lambda m, args, out: seen.update(q=args[0], v=args[2]))
    with torch.no_grad(), EnergyMonitor(net) as monitor:
        net(x)
    layers = monitor.report().layers.set_index("layer")
    assert not seen["q"].is_contiguous()  # every third channel of the fused spikes
    for part, name in (("q", "qk"), ("v", "av")):
        exact = seen[part].sum(dtype=torch.float64).item() / seen[part].numel()
        assert layers.loc[f"blocks.0.attn.attn_product.{name}", "input_rate"] == exact
