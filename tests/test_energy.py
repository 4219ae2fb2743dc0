from __future__ import annotations

import dataclasses
import pickle
import random

import pytest
import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.model import spikformer as sj_spikformer
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter
from torch import nn

from energy import EnergyMonitor, analytic_energy, ann_energy, appendix_energy, dense_macs, get_profile, measure_energy
from models import SpikformerSupernet, SubnetConfig, SupernetConfig, integrate_frames
from tests.conftest import random_config


class ForcedSpikes(nn.Module):
    """Emits a fixed spike pattern with the input's shape: a known firing rate."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = torch.zeros(x.numel())
        flat[: round(self.rate * x.numel())] = 1.0
        return flat.view(x.shape)


class TinySNN(nn.Module):
    """conv on the image (MAC), spikes at a forced rate, linear on spikes (AC), head (MAC)."""

    def __init__(self, rate: float, time_steps: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.spikes = ForcedSpikes(rate)
        self.fc = nn.Linear(8, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # [B, 2, 2, 2]
        s = self.spikes(y.flatten(1).unsqueeze(0).repeat(self.time_steps, 1, 1))  # [T, B, 8]
        return self.head(self.fc(s).mean(0) + 0.5)


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("time_steps", [1, 3])
def test_hand_computed_energy_on_forced_spike_patterns(rate, time_steps):
    model = TinySNN(rate, time_steps)
    images = 4
    report = measure_energy(model, torch.randn(images, 1, 2, 2))
    conv_macs = 2 * 2 * 2 * 1  # per image: 4 pixels x 2 filters x 1 input channel
    fc_dense = 8 * 3  # per image, per step
    head_macs = 3 * 2
    sops = rate * time_steps * fc_dense
    expected_pj = 4.6 * (conv_macs + head_macs) + 0.9 * sops
    assert report.energy_mj == pytest.approx(expected_pj * 1e-9, rel=1e-9)
    assert report.sops == pytest.approx(sops)
    assert report.macs == pytest.approx(conv_macs + head_macs)
    rows = report.layers.set_index("layer")
    assert list(rows["kind"]) == ["MAC", "AC", "MAC"]
    assert rows.loc["fc", "dense_macs"] == fc_dense
    assert rows.loc["fc", "input_rate"] == pytest.approx(rate)
    assert rows["energy_share"].sum() == pytest.approx(1.0)


def test_energy_grows_linearly_with_time_steps_when_rates_are_fixed():
    energies = [measure_energy(TinySNN(0.5, t), torch.randn(2, 1, 2, 2)).energy_mj for t in (1, 2, 4)]
    assert energies[1] - energies[0] == pytest.approx((energies[2] - energies[1]) / 2, rel=1e-9)
    assert energies[1] > energies[0]


def test_profiles_reuse_spikingjelly_presets_and_accept_user_values():
    assert (get_profile("fp16").e_mac_pj, get_profile("fp16").e_ac_pj) == (1.5, 0.4)
    assert (get_profile("int8").e_mac_pj, get_profile("int8").e_ac_pj) == (0.23, 0.03)
    assert (get_profile(None).e_mac_pj, get_profile(None).e_ac_pj) == (4.6, 0.9)
    assert (get_profile("3.0,0.5").e_mac_pj, get_profile("3.0,0.5").e_ac_pj) == (3.0, 0.5)
    with pytest.raises(ValueError, match="unknown energy profile 'fp8'; choose from"):
        get_profile("fp8")
    model = TinySNN(0.5, 2)
    x = torch.randn(2, 1, 2, 2)
    fp32 = measure_energy(model, x)
    int8 = measure_energy(model, x, profile="int8")
    assert int8.energy_mj == pytest.approx(
        (0.23 * fp32.macs + 0.03 * fp32.sops) * 1e-9, rel=1e-9
    )


def _force_all_ones(net: nn.Module) -> list:
    from spikingjelly.activation_based.neuron import BaseNode

    return [m.register_forward_hook(lambda mod, args, out: torch.ones_like(out))
            for m in net.modules() if isinstance(m, BaseNode)]


def test_measured_dense_macs_equal_the_analytic_count(tiny_supernet_cfg):
    rng = random.Random(3)
    net = SpikformerSupernet(tiny_supernet_cfg)
    handles = _force_all_ones(net)
    for cfg in [random_config(tiny_supernet_cfg, rng) for _ in range(4)] + [tiny_supernet_cfg.largest_subnet()]:
        net.set_subnet(cfg)
        report = measure_energy(net, torch.rand(3, 1, 8, 8))
        analytic = dense_macs(tiny_supernet_cfg, cfg).layers.set_index("layer")
        measured = report.layers.set_index("layer")
        assert sorted(measured.index) == sorted(analytic.index)
        assert (measured.loc[analytic.index, "dense_macs"] == analytic["dense_macs"]).all()
        assert (measured.loc[analytic.index, "kind"] == analytic["kind"]).all()
        ac = measured[measured["kind"] == "AC"]
        assert list(ac["ops"]) == pytest.approx(list(ac["input_rate"] * cfg.time_steps * ac["dense_macs"]))
    for h in handles:
        h.remove()


def test_all_ones_spikes_on_binary_layers_give_t_times_dense_macs(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    handles = _force_all_ones(net)
    cfg = tiny_supernet_cfg.largest_subnet()
    report = measure_energy(net, torch.rand(2, 1, 8, 8))
    rows = report.layers.set_index("layer")
    for name in ("sps.proj_convs.1", "blocks.0.attn.proj_linear", "blocks.0.mlp.fc2_linear",
                 "blocks.0.attn.attn_product.qk"):
        assert rows.loc[name, "input_rate"] == 1.0
        assert rows.loc[name, "ops"] == cfg.time_steps * rows.loc[name, "dense_macs"]
    assert report.firing_rate == 1.0
    for h in handles:
        h.remove()


def test_ac_counts_agree_with_spikingjelly_op_counter_on_binary_inputs(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    x = torch.rand(4, 1, 8, 8) * 3
    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        net(x)
    counts = counter.get_counts()
    report = measure_energy(net, x)
    rows = report.layers.set_index("layer")
    for name in ("blocks.0.mlp.fc2_linear", "blocks.1.mlp.fc2_linear", "blocks.0.attn.proj_linear"):
        theirs = sum(counts[f"SpikformerSupernet.{name}"].values()) / x.shape[0]
        assert rows.loc[name, "ops"] == pytest.approx(theirs, rel=1e-9), name
    assert rows.loc["blocks.0.mlp.fc2_linear", "ops"] > 0


def test_hooks_leave_outputs_unchanged_and_are_removed(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(4, 1, 8, 8) * 3
    with torch.no_grad():
        before = net(x)
        with EnergyMonitor(net) as monitor:
            during = net(x)
        after = net(x)
    assert torch.equal(before, during) and torch.equal(before, after)
    assert monitor.report().energy_mj > 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_monitor_accumulates_over_batches_per_image(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg).eval()
    x = torch.rand(6, 1, 8, 8) * 3
    with torch.no_grad(), EnergyMonitor(net) as monitor:
        net(x[:3])
        net(x[3:])
    split = monitor.report()
    whole = measure_energy(net, x)
    assert split.images == 6
    assert split.energy_mj == pytest.approx(whole.energy_mj, rel=1e-6)


def test_report_without_forward_is_an_error(tiny_supernet_cfg):
    with EnergyMonitor(SpikformerSupernet(tiny_supernet_cfg)) as monitor:
        pass
    with pytest.raises(RuntimeError, match="recorded no forward pass"):
        monitor.report()


def test_works_on_spikingjelly_builtin_spikformer():
    model = sj_spikformer.Spikformer(T=2, in_channels=3, img_size_h=16, img_size_w=16, patch_size=4,
                                     num_classes=4, embed_dims=32, num_heads=2, mlp_ratio=2.0, depths=1)
    report = measure_energy(model, torch.rand(2, 3, 16, 16))
    functional.reset_net(model)
    kinds = report.layers.set_index("layer")["kind"]
    assert kinds["head"] == "MAC"
    assert (kinds == "AC").sum() >= 6
    assert report.energy_mj > 0 and report.time_steps == 2
    assert 0 <= report.firing_rate <= 1


def test_analytic_energy_matches_measured_energy_at_rate_one(tiny_supernet_cfg):
    net = SpikformerSupernet(tiny_supernet_cfg)
    cfg = SubnetConfig.uniform(depth=1, embed_dim=16, num_heads=2, mlp_ratio=2.0, time_steps=3, max_depth=3)
    net.set_subnet(cfg)
    # force 1 spike per element everywhere the input is binary; the residual stream holds 2s
    handles = _force_all_ones(net)
    report = measure_energy(net, torch.rand(2, 1, 8, 8))
    for h in handles:
        h.remove()
    analytic = dense_macs(tiny_supernet_cfg, cfg)
    rates = report.layers.set_index("layer")["input_rate"].fillna(0)
    expected_pj = sum(
        (4.6 * r.dense_macs) if r.kind == "MAC" else 0.9 * rates[r.layer] * cfg.time_steps * r.dense_macs
        for r in analytic.layers.itertuples()
    )
    assert report.energy_mj == pytest.approx(expected_pj * 1e-9, rel=1e-9)
    assert analytic.energy_mj(firing_rate=1.0) < report.energy_mj  # the stream's 2s cost double


def test_analytic_energy_is_a_picklable_cost_of_the_dense_counts(tiny_supernet_cfg):
    cost = analytic_energy(tiny_supernet_cfg)
    half = analytic_energy(tiny_supernet_cfg, firing_rate=0.5, profile="fp32")
    rng = random.Random(0)
    for cfg in [random_config(tiny_supernet_cfg, rng) for _ in range(3)]:
        dense = dense_macs(tiny_supernet_cfg, cfg)
        assert cost(cfg) == dense.energy_mj() > 0
        assert half(cfg) == dense.energy_mj(firing_rate=0.5, profile="fp32") < cost(cfg)
        assert pickle.loads(pickle.dumps(cost))(cfg) == cost(cfg)


def test_the_same_network_as_an_ann_is_e_mac_times_its_dense_macs_once(tiny_supernet_cfg):
    ann = ann_energy(tiny_supernet_cfg)
    rng = random.Random(1)
    for cfg in [tiny_supernet_cfg.largest_subnet(), *(random_config(tiny_supernet_cfg, rng) for _ in range(3))]:
        once = dense_macs(tiny_supernet_cfg, cfg).layers
        assert ann(cfg) == pytest.approx(4.6e-9 * once["dense_macs"].sum(), rel=1e-12)
        # Every layer once on real values: T leaves it alone (and so does the first-layer convention,
        # which ann_energy does not take).
        longer = dataclasses.replace(cfg, time_steps=cfg.time_steps + 3)
        assert ann(longer) == ann(cfg)
        # A spiking network at rate 1 saves E_MAC - E_AC per accumulate at T = 1.
        one_step = dataclasses.replace(cfg, time_steps=1)
        assert analytic_energy(tiny_supernet_cfg)(one_step) < ann(one_step)
        assert ann_energy(tiny_supernet_cfg, profile="fp16")(cfg) == pytest.approx(1.5 / 4.6 * ann(cfg), rel=1e-12)
    assert pickle.loads(pickle.dumps(ann))(cfg) == ann(cfg)


def _static_and_event_nets(tiny_supernet_cfg):
    static = SpikformerSupernet(tiny_supernet_cfg).eval()
    event_cfg = dataclasses.replace(tiny_supernet_cfg, in_channels=2, event_input=True)
    return static, SpikformerSupernet(event_cfg).eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_first_layer_convention_adds_t_minus_one_first_layer_macs_on_images_and_nothing_on_events(
        tiny_supernet_cfg, seed):
    torch.manual_seed(seed)
    static, event = _static_and_event_nets(tiny_supernet_cfg)
    config = random_config(tiny_supernet_cfg, random.Random(seed))
    static.set_subnet(config)
    event.set_subnet(config)
    t = config.time_steps
    images = torch.rand(3, 1, 8, 8)
    once = measure_energy(static, images)
    per_step = measure_energy(static, images, first_layer="per_step")
    first_macs = dense_macs(tiny_supernet_cfg, config).layers.set_index("layer").loc["sps.proj_convs.0", "dense_macs"]
    e_mac_mj = get_profile("fp32").e_mac_pj * 1e-9
    assert per_step.energy_mj - once.energy_mj == pytest.approx((t - 1) * e_mac_mj * first_macs, rel=1e-9)
    assert (once.first_layer, per_step.first_layer) == ("once", "per_step")
    assert per_step.sops == once.sops
    # The analytic count follows the same convention.
    counted = dense_macs(tiny_supernet_cfg, config, first_layer="per_step").layers.set_index("layer")
    assert counted.loc["sps.proj_convs.0", "dense_macs"] == t * first_macs

    frames = torch.poisson(torch.full((3, t + 1, 2, 8, 8), 0.4))
    a, b = measure_energy(event, frames), measure_energy(event, frames, first_layer="per_step")
    assert a.energy_mj == b.energy_mj
    first = a.layers.set_index("layer").loc["sps.proj_convs.0"]
    # Spike-driven: the measured input rate (counts per element per step) x dense MACs x T, at E_AC.
    steps = integrate_frames(frames, t)
    assert first["kind"] == "AC" and first["input_rate"] == pytest.approx(steps.mean().item(), rel=1e-6)
    assert first["ops"] == pytest.approx(first["input_rate"] * t * first["dense_macs"], rel=1e-9)
    assert first["dense_macs"] == first_macs * 2  # two polarity channels
    assert a.images == 3


def test_unknown_first_layer_convention_is_refused(tiny_supernet_cfg):
    with pytest.raises(ValueError, match="once"):
        EnergyMonitor(SpikformerSupernet(tiny_supernet_cfg), first_layer="twice")
    with pytest.raises(ValueError, match="per_step"):
        dense_macs(tiny_supernet_cfg, tiny_supernet_cfg.largest_subnet(), first_layer="sometimes")


def test_settings_and_energy_name_the_same_first_layer_conventions():
    from energy import FIRST_LAYER_CONVENTIONS
    from nas.settings import FIRST_LAYER_CONVENTIONS as SETTINGS_CONVENTIONS

    assert SETTINGS_CONVENTIONS == FIRST_LAYER_CONVENTIONS


@pytest.mark.parametrize("depth, width, rate", [(8, 512, 0.3), (4, 256, 0.1), (2, 384, 0.25)])
def test_appendix_arithmetic_is_first_conv_at_e_mac_plus_rate_t_dense_at_e_ac(depth, width, rate):
    cfg = SupernetConfig(in_channels=3, img_size=224, patch_size=16, num_classes=1000, max_depth=depth,
                         max_embed_dim=width, max_num_heads=8, time_steps=4)
    dense = dense_macs(cfg, cfg.largest_subnet(), first_layer="per_step")
    rows = dense.layers.set_index("layer")
    first = 224 * 224 * 3 * (width // 8) * 9
    assert rows.loc["sps.proj_convs.0", "dense_macs"] == 4 * first  # charged at each of T=4 steps
    ac = rows.loc[rows["kind"] == "AC", "dense_macs"].sum()
    report = appendix_energy(dense, rate, count_head=False)
    assert report.energy_mj == pytest.approx((4.6 * 4 * first + 0.9 * rate * 4 * ac) * 1e-9, rel=1e-12)
    assert report.sops == pytest.approx(rate * 4 * ac) and "head" not in set(report.layers["layer"])
    with_head = appendix_energy(dense, rate)
    assert with_head.energy_mj - report.energy_mj == pytest.approx(4.6e-9 * width * 1000)
    per_layer = {name: rate for name in rows.index[rows["kind"] == "AC"]}
    assert appendix_energy(dense, per_layer, count_head=False).energy_mj == pytest.approx(report.energy_mj)
    with pytest.raises(ValueError, match="without a rate"):
        appendix_energy(dense, dict(list(per_layer.items())[1:]))


def test_appendix_energy_reproduces_spikformer_8_512_on_imagenet():
    """Spikformer-8-512, 224x224, T=4: 0.347 G first-layer MACs and 11.09 G SOPs give 11.577 mJ."""
    cfg = SupernetConfig(in_channels=3, img_size=224, patch_size=16, num_classes=1000, max_depth=8,
                         max_embed_dim=512, max_num_heads=8, time_steps=4)
    dense = dense_macs(cfg, cfg.largest_subnet(), first_layer="per_step")
    ac = dense.layers.loc[dense.layers["kind"] == "AC", "dense_macs"].sum()
    report = appendix_energy(dense, 11.09e9 / (4 * ac), count_head=False)
    assert round(report.macs / 1e9, 3) == 0.347 and report.sops == pytest.approx(11.09e9)
    assert report.energy_mj == pytest.approx(11.577, abs=0.001)
