"""Energy models: our figures against spikingjelly's profilers called directly, and the
models recorded with every trial.

The cross-checks run on the trained digits supernet's largest subnet, extracted as a
standalone network after BN recalibration, on real validation images, so that every layer
sees spikes.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.op_counter import (
    LemaireEnergyConfig,
    LemaireEnergyProfiler,
    SimpleEnergyConfig,
    SimpleEnergyCostConfig,
    SimpleEnergyProfiler,
)
from torch import nn

from energy import DEVICES, ENERGY_MODELS, TRIAL_MODELS, EnergyMonitor, analytic_energy, lemaire_energy, neuron_count
from energy.models import LEMAIRE_COMPONENTS, lemaire_attention_pj
from models import AttentionProduct, extract_subnet
from nas import EvaluationSettings, SubnetEvaluator
from nas.settings import ENERGY_MODEL_NAMES, ON_REQUEST_MODELS

IMAGES = 24


@pytest.fixture(scope="module")
def standalone(digits_checkpoint, digits_data):
    """The largest subnet, recalibrated on the supernet and extracted; a batch of validation images;
    and the evaluator that recalibrated it (whole validation split, every model recorded)."""
    net = digits_checkpoint.load()
    settings = EvaluationSettings(record_energy_models=("lemaire",), energy_images=8)
    evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=settings)
    config = digits_checkpoint.space.largest()
    score = evaluator(config)
    model = extract_subnet(evaluator.net, config).eval()
    images = torch.stack([digits_data.val[i][0] for i in range(IMAGES)])
    return model, images, evaluator, score


def _inputs(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of every synaptic layer in one forward pass."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[name] = args[0].detach()

        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        model(images)
    functional.reset_net(model)
    for handle in handles:
        handle.remove()
    return seen


def _ours(model: nn.Module, images: torch.Tensor):
    with torch.no_grad(), EnergyMonitor(model) as monitor:
        model(images)
    functional.reset_net(model)
    return monitor.reports(models=TRIAL_MODELS)


def test_the_model_lists_agree_and_every_model_names_its_source():
    assert tuple(ENERGY_MODELS) == ENERGY_MODEL_NAMES
    assert tuple(m for m, info in ENERGY_MODELS.items() if not info.every_trial) == ON_REQUEST_MODELS
    for name, info in ENERGY_MODELS.items():
        assert info.name == name and info.charges and info.source
    assert set(DEVICES) == {"loihi", "spinnaker2"}
    assert "IEEE Micro" in DEVICES["loihi"].source and "1903.08941" in DEVICES["spinnaker2"].source


def test_ops_equals_spikingjellys_simple_profiler_layer_by_layer(standalone):
    """Our ``ops`` model against `SimpleEnergyProfiler` (memory priced at 0, BatchNorm and the
    attention product left out: neither is a synaptic layer of the Spikformer convention).

    Where the conventions agree the counts are equal; where they differ the test shows the
    difference is exactly what the note says:
    - layers fed the residual stream (Q/K/V, MLP fc1) see spike *counts* (0, 1, 2, ...):
      spikingjelly prices a non-binary input as dense MACs, we as count x fan-out SOPs;
    - a spike-driven 3x3 conv: spikingjelly counts the weight taps that land inside the
      image, we count rate x dense MACs, i.e. 9 taps per input spike (padding included);
    - spikingjelly also charges the neurons' own additions (the LIF update) as ACs; the ops
      model charges no neuron (the device models do).
    """
    model, images, _, _ = standalone
    batch = len(images)
    ours = _ours(model, images)["ops"].layers.set_index("layer")
    inputs = _inputs(model, images)
    norms = list({type(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    costs = SimpleEnergyCostConfig(e_memory_pj_per_byte=0.0)
    profiler = SimpleEnergyProfiler(config=SimpleEnergyConfig(cost_config=costs,
                                                              extra_ignore_modules=[*norms, AttentionProduct]))
    profiler.bind_model(model)
    with torch.no_grad(), profiler:
        model(images)
    functional.reset_net(model)
    ac = profiler.ac_counter.get_counts()
    mac = profiler.mac_counter.get_counts()

    def theirs(counts, layer: str) -> int:
        return sum(counts.get(f"Spikformer.{layer}", {}).values())

    explained_mac = explained_ac = 0.0
    branches = set()
    for layer, x in inputs.items():
        module = model.get_submodule(layer)
        if layer.endswith("qkv_linear"):
            mine = sum(ours.loc[layer.replace("qkv_linear", part), "ops"] for part in ("q_linear", "k_linear",
                                                                                         "v_linear"))
        else:
            mine = ours.loc[layer, "ops"]
        mine *= batch  # ours are per image
        binary = bool(((x == 0) | (x == 1)).all())
        branches.add((type(module).__name__, binary, ours.loc[layer, "kind"] if layer in ours.index else "AC"))
        if layer in ("sps.proj_convs.0", "head"):  # real-valued input: dense MACs on both sides
            assert ours.loc[layer, "kind"] == "MAC" and not binary
            assert mine == pytest.approx(theirs(mac, layer), rel=1e-12) and theirs(ac, layer) == 0
        elif isinstance(module, nn.Linear) and binary:  # a spike per input: SOPs = spikes x fan-out
            assert x.sum() > 0, f"{layer} saw no spikes: the check would be vacuous"
            assert mine == pytest.approx(theirs(ac, layer), rel=1e-12) and theirs(mac, layer) == 0
        elif isinstance(module, nn.Linear):  # spike counts from the residual stream
            assert x.max() >= 2 and x.min() >= 0
            assert mine == pytest.approx(float(x.sum()) * module.out_features, rel=1e-12)
            dense = x.numel() // module.in_features * module.in_features * module.out_features
            assert theirs(mac, layer) == dense and theirs(ac, layer) == 0
            explained_mac += dense
            explained_ac -= mine
        else:  # a spike-driven 3x3 conv
            assert binary and x.sum() > 0 and module.kernel_size == (3, 3) and module.stride == (1, 1)
            assert mine == pytest.approx(float(x.sum()) * module.out_channels * 9, rel=1e-12)
            inside = F.conv2d(x.double(), torch.ones(1, x.shape[1], 3, 3, dtype=torch.float64), padding=1).sum()
            assert theirs(ac, layer) == int(inside) * module.out_channels and theirs(mac, layer) == 0
            explained_ac += theirs(ac, layer) - mine
    assert explained_mac > 0 and explained_ac != 0  # both differences occur in this network
    assert branches == {("Conv2d", False, "MAC"), ("Linear", False, "MAC"), ("Linear", True, "AC"),
                        ("Linear", False, "AC"), ("Conv2d", True, "AC")}
    # The totals over the synaptic layers then agree to 1e-9.
    ours_pj = sum(ours.loc[ours["kind"] == "MAC", "ops"]) * 4.6 + sum(ours.loc[ours["kind"] == "AC", "ops"]) * 0.9
    synaptic = [name for name in inputs]
    theirs_pj = (sum(theirs(mac, n) for n in synaptic) * 4.6 + sum(theirs(ac, n) for n in synaptic) * 0.9)
    attention = sum(ours.loc[ours.index.str.endswith((".qk", ".av")), "ops"]) * batch * 0.9
    assert ours_pj * batch == pytest.approx(theirs_pj - explained_mac * 4.6 - explained_ac * 0.9 + attention,
                                            rel=1e-9)
    assert _ours(model, images)["ops"].energy_mj * batch * 1e9 == pytest.approx(ours_pj * batch, rel=1e-9)


def test_device_models_count_what_spikingjelly_counts(standalone):
    """A device charges every neuron at every step: as many updates as spikingjelly's
    profiler reads and writes neuron states; its synaptic events are the ops model's SOPs."""
    model, images, _, _ = standalone
    reports = _ours(model, images)
    profiler = SimpleEnergyProfiler()
    profiler.bind_model(model)
    with torch.no_grad(), profiler:
        model(images)
    functional.reset_net(model)
    counts = profiler.get_report().counts
    state_bytes = 4  # one fp32 membrane potential per neuron
    for name, device in DEVICES.items():
        layers = reports[name].layers
        neurons = layers[layers["kind"] == "NEURON"]
        assert neurons["ops"].sum() * len(images) == counts["neuron_state_read_bytes"] / state_bytes
        assert neurons["ops"].sum() == model.config.time_steps * neuron_count(model.supernet_cfg, model.config)
        spikes = (neurons["input_rate"] * neurons["ops"]).sum()
        synaptic = layers[layers["kind"] != "NEURON"]
        ops = reports["ops"].layers
        assert synaptic["ops"].tolist() == ops["ops"].tolist()
        expected = (synaptic["ops"].sum() * device.e_synop_pj + neurons["ops"].sum() * device.e_neuron_pj
                    + spikes * device.e_spike_pj) * 1e-9
        assert reports[name].energy_mj == pytest.approx(expected, rel=1e-12)
    assert reports["loihi"].energy_mj > reports["ops"].energy_mj


def test_lemaire_equals_spikingjellys_profiler_on_the_extracted_subnet(standalone):
    """The evaluator's ``lemaire`` figure is spikingjelly's `LemaireEnergyProfiler` called
    directly on the extracted subnet, one image at a time, plus the attention products at
    Lemaire's 32-bit add."""
    model, _, evaluator, score = standalone
    images = evaluator._energy_images()
    assert len(images) == 8
    profiler = LemaireEnergyProfiler(config=LemaireEnergyConfig(strict=False))
    profiler.bind_model(model)
    with torch.no_grad(), warnings.catch_warnings(action="ignore", category=RuntimeWarning), profiler:
        for image in images:
            model(image.unsqueeze(0))
            functional.reset_net(model)
    direct = profiler.get_report()
    with torch.no_grad(), EnergyMonitor(model) as monitor:
        for image in images:
            model(image.unsqueeze(0))
            functional.reset_net(model)
    ops = monitor.report().layers
    attention = ops.loc[ops["layer"].str.endswith((".qk", ".av")), "ops"].sum() * lemaire_attention_pj()
    assert attention > 0
    expected = (direct.total_pj / len(images) + attention) * 1e-9
    recorded = score.energies["lemaire"]
    assert recorded.energy_mj == pytest.approx(expected, rel=1e-9)
    assert list(recorded.layers["layer"]) == list(LEMAIRE_COMPONENTS)
    assert recorded.layers["energy_mj"].sum() == pytest.approx(recorded.energy_mj, rel=1e-12)
    # Memory dominates, as Lemaire et al. find.
    parts = dict(zip(recorded.layers["layer"], recorded.layers["energy_mj"]))
    assert parts["params"] + parts["potential"] + parts["inout"] > parts["ops"]
    # Priced one image at a time: a batch would size the buffers for the whole batch.
    batched = lemaire_energy(model, [torch.stack(images)])
    assert not math.isclose(batched.energy_mj / len(images), recorded.energy_mj, rel_tol=1e-3)


def test_the_evaluator_records_every_model_as_on_the_extracted_subnet(standalone, digits_data):
    """What a trial records on the supernet equals the same models measured on the standalone
    subnet over the same images: elastic slicing costs nothing."""
    model, _, evaluator, score = standalone
    assert set(score.energies) == {"ops", "loihi", "spinnaker2", "lemaire"}
    assert score.energy is score.energies["ops"]
    split = evaluator.scored_split
    images = torch.stack([split[i][0] for i in range(len(split))])
    with torch.no_grad(), EnergyMonitor(model) as monitor:
        for chunk in images.split(evaluator.settings.batch_size):
            model(chunk)
            functional.reset_net(model)
    standalone_reports = monitor.reports(models=TRIAL_MODELS)
    for name in TRIAL_MODELS:
        assert score.energies[name].energy_mj == pytest.approx(standalone_reports[name].energy_mj, rel=1e-9)
    attrs = score.attrs()
    assert attrs["energies_mj"] == {name: report.energy_mj for name, report in score.energies.items()}
    assert attrs["energy_model"] == "ops" and set(attrs["lemaire_components_mj"]) == set(LEMAIRE_COMPONENTS)
    table = score.layer_table()
    for name in TRIAL_MODELS:
        assert table[f"energy_mj_{name}"].sum() == pytest.approx(score.energies[name].energy_mj, rel=1e-12)


@pytest.mark.parametrize("model", ["loihi", "lemaire"])
def test_a_study_model_drives_the_score_and_early_rejection(digits_checkpoint, digits_data, model):
    net = digits_checkpoint.load()
    settings = EvaluationSettings(energy_model=model, energy_images=4, early_rejection=True, rejection_min_images=20,
                                  batch_size=20)
    evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=settings)
    config = digits_checkpoint.space.largest()
    score = evaluator(config)
    assert score.energy.model == model and score.attrs()["energy_mj"] == score.energies[model].energy_mj
    assert score.images_scored == evaluator.images
    # A rule that rejects everything sees the bound of the study's model: exact for lemaire, a
    # lower bound for a device (neuron updates are the same for every image).
    seen = []
    rejected = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=settings)(
        config, reject=lambda accuracy, energy: seen.append(energy) or True)
    assert rejected.rejected and rejected.images_scored == 20
    if model == "lemaire":
        assert seen[0] == pytest.approx(score.energy.energy_mj, rel=1e-12)
    else:
        assert 0 < seen[0] <= score.energy.energy_mj


def test_analytic_device_energy_counts_every_neuron_at_every_step(tiny_space):
    supernet_cfg = tiny_space.supernet_config(in_channels=1, img_size=8, num_classes=10)
    config = tiny_space.largest()
    loihi = DEVICES["loihi"]
    silent = analytic_energy(supernet_cfg, firing_rate=0.0, model="loihi")(config)
    real_layers = analytic_energy(supernet_cfg, firing_rate=0.0)(config) / 4.6e-9  # dense MACs of MAC layers
    updates = config.time_steps * neuron_count(supernet_cfg, config)
    assert silent == pytest.approx((real_layers * loihi.e_synop_pj + updates * loihi.e_neuron_pj) * 1e-9, rel=1e-12)
    assert analytic_energy(supernet_cfg, firing_rate=0.2, model="loihi")(config) > silent
    with pytest.raises(ValueError, match="unknown energy model 'truenorth'"):
        analytic_energy(supernet_cfg, model="truenorth")
