from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn

from models import (
    ConfigError,
    SpikformerSupernet,
    SubnetConfig,
    SupernetConfig,
    count_params,
    extract_subnet,
    integrate_frames,
)
from models.elastic import ElasticBatchNorm1d, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from models.neurons import lif, set_lif
from tests.conftest import random_config


def test_elastic_linear_equals_small_linear_with_copied_weights():
    big = ElasticLinear(12, 10)
    big.active_out = 6
    small = nn.Linear(7, 6)
    with torch.no_grad():
        small.weight.copy_(big.weight[:6, :7])
        small.bias.copy_(big.bias[:6])
    x = torch.randn(3, 5, 7)
    assert torch.equal(big(x), small(x))


def test_elastic_linear_gradient_reaches_only_the_active_slice():
    big = ElasticLinear(8, 8)
    big.active_out = 3
    big(torch.randn(4, 5)).sum().backward()
    assert big.weight.grad[:3, :5].abs().sum() > 0
    assert big.weight.grad[3:].abs().sum() == 0
    assert big.weight.grad[:, 5:].abs().sum() == 0


def test_elastic_conv_equals_small_conv_with_copied_weights():
    big = ElasticConv2d(6, 9, 3, padding=1, bias=False)
    big.active_out = 4
    small = nn.Conv2d(5, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        small.weight.copy_(big.weight[:4, :5])
    x = torch.randn(2, 5, 7, 7)
    assert torch.allclose(big(x), small(x), atol=1e-6)


@pytest.mark.parametrize("elastic_cls,small_cls,shape", [
    (ElasticBatchNorm1d, nn.BatchNorm1d, (16, 5)),
    (ElasticBatchNorm2d, nn.BatchNorm2d, (4, 5, 3, 3)),
])
def test_elastic_batchnorm_slices_affine_and_running_stats(elastic_cls, small_cls, shape):
    big = elastic_cls(8)
    small = small_cls(5)
    with torch.no_grad():
        big.weight.uniform_(0.5, 1.5)
        big.bias.uniform_(-1, 1)
        small.weight.copy_(big.weight[:5])
        small.bias.copy_(big.bias[:5])
    x = torch.randn(*shape) * 3 + 1
    assert torch.allclose(big(x), small(x), atol=1e-6)
    assert torch.allclose(big.running_mean[:5], small.running_mean)
    assert torch.allclose(big.running_var[:5], small.running_var)
    assert torch.equal(big.running_mean[5:], torch.zeros(3))
    big.eval(), small.eval()
    assert torch.allclose(big(x), small(x), atol=1e-6)


def test_elastic_batchnorm_cumulative_average_when_momentum_is_none():
    bn = ElasticBatchNorm1d(4, momentum=None)
    batches = [torch.randn(10, 3) + i for i in range(3)]
    for b in batches:
        bn(b)
    expected = torch.stack([b.mean(0) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean[:3], expected, atol=1e-6)


# Membrane before the spike: H[t] = V[t-1] + (x - V[t-1]) / tau (the input decays too); a spike
# when H >= threshold, then V = 0 (hard reset). Spike trains for a constant input, by hand:
@pytest.mark.parametrize("tau, threshold, x, spikes", [
    (2.0, 1.0, 1.9, [0, 1, 0, 1, 0, 1]),  # 0.95, 1.425 -> reset; a soft reset would fire at step 3
    (2.0, 1.0, 2.0, [1, 1, 1, 1]),  # H = 1.0 reaches the threshold exactly: it fires
    (4.0, 1.0, 1.5, [0, 0, 0, 1, 0, 0, 0, 1]),  # 0.375, 0.656, 0.867, 1.025
    (4.0, 0.5, 1.5, [0, 1, 0, 1]),  # the same input under a lower threshold
    (1.25, 0.8, 0.9, [0, 1, 0, 1]),  # 0.72, 0.864
])
def test_lif_fires_where_tau_threshold_and_hard_reset_predict(tau, threshold, x, spikes):
    inputs = torch.full((len(spikes), 3), x)  # [T, N]: multi-step
    expected = [[float(s)] * 3 for s in spikes]
    assert lif(tau=tau, threshold=threshold)(inputs).tolist() == expected
    changed = lif()
    set_lif(changed, tau=tau, threshold=threshold)  # as the supernet changes its neurons
    assert changed(inputs).tolist() == expected


def test_lif_state_carries_over_until_reset_net():
    node = lif(tau=2.0, threshold=1.0)
    batch = torch.full((3, 2), 1.9)
    first = node(batch)
    assert first[:, 0].tolist() == [0.0, 1.0, 0.0]
    assert node(batch)[:, 0].tolist() == [1.0, 0.0, 1.0]  # starts from the left-over V = 0.95
    functional.reset_net(node)
    assert torch.equal(node(batch), first)


def test_lif_surrogate_gradient_is_a_sigmoid_of_slope_four():
    node = lif(tau=2.0, threshold=1.0)
    x = torch.full((1, 1), 2.0, requires_grad=True)  # H = x / tau = the threshold
    node(x).sum().backward()
    # d spike / dH = alpha * sigmoid'(0) = 4 / 4 = 1, and dH / dx = 1 / tau
    assert x.grad.item() == pytest.approx(0.5)


def _train_bn_stats(net, configs, x):
    """A few train-mode forwards so BN statistics are not the identity."""
    net.train()
    with torch.no_grad():
        for cfg in configs:
            net.set_subnet(cfg)
            net(x)


def test_extracted_subnets_match_supernet_outputs_and_param_counts(tiny_supernet_cfg):
    rng = random.Random(1)
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(6, 1, 8, 8) * 2
    configs = [random_config(tiny_supernet_cfg, rng) for _ in range(6)]
    configs.append(tiny_supernet_cfg.largest_subnet())
    assert len({c.depth for c in configs}) > 1 and len({c.time_steps for c in configs}) > 1
    for cfg in configs:
        _train_bn_stats(net, [cfg], x)
        net.eval()
        net.set_subnet(cfg)
        with torch.no_grad():
            expected = net(x)
            standalone = extract_subnet(net, cfg).eval()
            got = standalone(x)
        assert (got - expected).abs().max().item() < 1e-5, cfg
        assert sum(p.numel() for p in standalone.parameters()) == count_params(tiny_supernet_cfg, cfg)
        assert not any(isinstance(m, (ElasticLinear, ElasticConv2d)) for m in standalone.modules())


def test_largest_subnet_param_count_equals_supernet_params(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    largest = tiny_supernet_cfg.largest_subnet()
    assert sum(p.numel() for p in net.parameters()) == count_params(tiny_supernet_cfg, largest)


def test_two_identical_forwards_give_identical_outputs(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(4, 1, 8, 8) * 3
    first = net(x)
    second = net(x)
    assert torch.equal(first, second)
    net.eval()
    assert torch.equal(net(x), net(x))


def test_static_image_is_equivalent_to_repeated_sequence(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(3, 1, 8, 8) * 3
    sequence = x.unsqueeze(1).repeat(1, tiny_supernet_cfg.time_steps, 1, 1, 1)  # [B, T, C, H, W]
    with torch.no_grad():
        assert torch.allclose(net(x), net(sequence), atol=1e-6)


@pytest.mark.parametrize("gene,value", [("tau", 10.0), ("threshold", 0.4), ("time_steps", 5)])
def test_neuron_genes_and_time_steps_change_the_output(tiny_supernet_cfg, gene, value):
    net = SpikformerSupernet(tiny_supernet_cfg)  # train mode: batch statistics make neurons fire
    x = torch.rand(8, 1, 8, 8) * 4
    base = tiny_supernet_cfg.largest_subnet()
    changed = SubnetConfig.from_dict({**base.to_dict(), gene: value if gene == "time_steps" else [value] * 3})
    with torch.no_grad():
        net.set_subnet(base)
        y0 = net(x)
        net.set_subnet(changed)
        y1 = net(x)
    assert not torch.allclose(y0, y1)


def test_threshold_scope_block_reaches_every_neuron_but_attention(tiny_supernet_cfg):
    supernet_cfg = SupernetConfig(**{**tiny_supernet_cfg.to_dict(), "threshold_scope": "block"})
    net = SpikformerSupernet(supernet_cfg)
    cfg = SubnetConfig.from_dict({**supernet_cfg.largest_subnet().to_dict(), "threshold": [1.6, 1.6, 1.6]})
    net.set_subnet(cfg)
    attn = net.blocks[0].attn
    assert attn.qkv_lif.v_threshold == 1.6 and attn.proj_lif.v_threshold == 1.6
    assert attn.attn_lif.v_threshold == 0.5
    mlp_only = SpikformerSupernet(tiny_supernet_cfg)
    mlp_only.set_subnet(cfg)
    assert mlp_only.blocks[0].mlp.fc1_lif.v_threshold == 1.6
    assert mlp_only.blocks[0].mlp.fc2_lif.v_threshold == 1.0
    assert mlp_only.blocks[0].attn.qkv_lif.tau == 2.0 and mlp_only.blocks[0].attn.qkv_lif.v_threshold == 1.0


def test_num_heads_really_changes_the_head_split(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(8, 1, 8, 8) * 4
    outs = []
    for heads in (1, 4):
        net.set_subnet(SubnetConfig.uniform(depth=3, embed_dim=32, num_heads=heads, mlp_ratio=4.0, time_steps=2))
        with torch.no_grad():
            outs.append(net(x))
    assert outs[0].abs().sum() > 0
    assert not torch.allclose(*outs)


def test_config_json_round_trip_and_arch_id_ignores_dormant_genes():
    a = SubnetConfig(depth=2, embed_dim=32, num_heads=[2, 4, 1], mlp_ratio=[2, 3, 4], tau=[2, 2, 10],
                     threshold=[1, 1, 0.6], time_steps=3)
    b = SubnetConfig(depth=2, embed_dim=32, num_heads=[2, 4, 4], mlp_ratio=[2, 3, 1], tau=[2, 2, 1.25],
                     threshold=[1, 1, 2.0], time_steps=3)
    assert SubnetConfig.from_json(a.to_json()) == a
    assert json.loads(a.to_json())["mlp_ratio"] == [2.0, 3.0, 4.0]
    assert a.arch_id == b.arch_id
    assert a.arch_id != SubnetConfig.from_dict({**a.to_dict(), "time_steps": 4}).arch_id
    assert a.arch_id != SubnetConfig.from_dict({**a.to_dict(), "tau": [2, 1.25, 10]}).arch_id


@pytest.mark.parametrize("change,message", [
    ({"num_heads": [3, 4, 4]}, r"num_heads=3 does not fit embed_dim=32 \(block 0\); choose from \[1, 2, 4\]"),
    ({"tau": [2.0, 1.0, 2.0]}, r"tau=1.0 \(block 1\) must be > 1"),
    ({"embed_dim": 64, "num_heads": [4, 4, 4]}, r"embed_dim=64 is above the supernet maximum 32"),
    ({"depth": 4}, r"depth=4 is outside the supernet; choose from 1..3"),
    ({"mlp_ratio": [4.0, 8.0, 4.0]}, r"mlp_ratio=8.0 \(block 1\) is outside the supernet"),
    ({"threshold": [1.0, 1.0]}, r"threshold has 2 entries but depth=3 needs one per block"),
    ({"time_steps": 0}, r"time_steps=0 must be >= 1"),
])
def test_invalid_configs_name_field_block_and_allowed_values(tiny_supernet_cfg, change, message):
    cfg = SubnetConfig.from_dict({**tiny_supernet_cfg.largest_subnet().to_dict(), **change})
    net = SpikformerSupernet(tiny_supernet_cfg)
    with pytest.raises(ValueError, match=message):
        net.set_subnet(cfg)


def test_from_dict_rejects_unknown_and_missing_fields():
    with pytest.raises(ValueError, match="unknown SubnetConfig fields"):
        SubnetConfig.from_dict({"depth": 1, "width": 3})
    with pytest.raises(ValueError, match="missing fields"):
        SubnetConfig.from_dict({"depth": 1})


def test_supernet_config_rejects_bad_patch_size():
    with pytest.raises(ValueError, match="patch_size=3 must be one of"):
        SupernetConfig(patch_size=3)


def test_subnet_context_restores_previous_config(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    small = SubnetConfig.uniform(depth=1, embed_dim=16, num_heads=2, mlp_ratio=1.0, max_depth=3)
    with net.subnet(small):
        assert net.config.depth == 1 and net.sps.rpe_conv.active_out == 16
    assert net.config == tiny_supernet_cfg.largest_subnet()
    assert net.sps.rpe_conv.active_out == 32


def test_frames_integrate_into_t_steps_of_consecutive_frames():
    frames = torch.arange(2 * 7, dtype=torch.float32).view(2, 7)  # [B, F]
    steps = integrate_frames(frames, 3)  # windows of frames 0-1, 2-3, 4-6
    assert steps.shape == (3, 2)
    assert steps[:, 0].tolist() == [0 + 1, 2 + 3, 4 + 5 + 6]
    assert torch.equal(steps.sum(0), frames.sum(1))  # every frame counts once
    assert torch.equal(integrate_frames(frames, 7), frames.T)
    even = integrate_frames(frames[:, :6], 2)
    assert even[:, 1].tolist() == [7 + 8 + 9, 10 + 11 + 12]
    with pytest.raises(ValueError, match="at least 8"):
        integrate_frames(frames, 8)


def test_supernet_runs_frame_sequences_with_the_first_conv_at_every_step(tiny_supernet_cfg):
    cfg = dataclasses.replace(tiny_supernet_cfg, in_channels=2, event_input=True)
    torch.manual_seed(0)
    net = SpikformerSupernet(cfg).eval()
    config = dataclasses.replace(cfg.largest_subnet(), time_steps=2)
    net.set_subnet(config)
    frames = torch.poisson(torch.full((3, 4, 2, 8, 8), 1.0))
    calls = []
    handle = net.sps.proj_convs[0].register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    with torch.no_grad():
        out = net(frames)
        # The same as feeding the integrated steps, one per step (T = frames).
        same = net(integrate_frames(frames, 2).transpose(0, 1))
    handle.remove()
    assert out.shape == (3, cfg.num_classes) and torch.equal(out, same)
    assert calls == [2 * 3, 2 * 3]  # T x B images through the first conv: once per step
    with pytest.raises(ValueError, match="event frames"):
        net(torch.rand(3, 2, 8, 8))


def test_attention_scale_comes_from_the_supernet_config(tiny_supernet_cfg):
    net = SpikformerSupernet(dataclasses.replace(tiny_supernet_cfg, attention_scale=0.25))
    assert {block.attn.attn_product.scale for block in net.blocks} == {0.25}
    with pytest.raises(ConfigError, match="attention_scale"):
        SupernetConfig(attention_scale=0.0)
