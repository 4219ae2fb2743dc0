"""Supernet training: rules (uniform, sandwich, in-place distillation), validation while
training and its metrics file, and a loop that does not wait on the device every step."""

from __future__ import annotations

import csv
import traceback
from pathlib import Path

import pytest
import torch

import nas.train_loop as train_loop
from models import ConfigError, SpikformerSupernet
from nas import DatasetSpec, load_checkpoint
from nas.recipes import RULES, Recipe, get_recipe
from nas.train import METRICS, metrics_path, train_supernet
from tests.conftest import DIGITS_RECIPE


def test_rules_map_to_the_recipe_and_bad_ones_are_refused():
    recipe = get_recipe("digits")
    assert recipe.rule == get_recipe("cifar").rule == "distill"  # the default, chosen with bench_distill.py
    assert [recipe.with_rule(rule).rule for rule in RULES] == list(RULES)
    assert recipe.with_rule("distill").sandwich and recipe.with_rule("distill").distill
    assert recipe.with_rule(None) == recipe
    with pytest.raises(ConfigError, match="choose from"):
        recipe.with_rule("bignas")
    with pytest.raises(ConfigError, match="needs sandwich"):
        recipe.replace(sandwich=False)  # distill stays on
    # Recipes stored before distillation existed (no "distill" key) still load.
    stored = recipe.with_rule("uniform").to_dict()
    del stored["distill"]
    assert Recipe.from_dict(stored).rule == "uniform"


def test_metrics_file_has_a_row_per_epoch_and_validation_does_not_change_training(
        tmp_path, digits_data, digits_checkpoint):
    path = tmp_path / "net.pt"
    train_supernet(digits_checkpoint.space, DatasetSpec("digits"), DIGITS_RECIPE, path, data=digits_data,
                   device="cpu", progress=False, eval_every=2)
    with open(metrics_path(path)) as f:
        rows = list(csv.DictReader(f))
    assert metrics_path(path).name == "net.metrics.csv"
    assert list(rows[0]) == list(METRICS)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # Validated every 2 epochs: epoch 1 has no scores, epoch 2 (also the last) has them.
    assert rows[0]["val_accuracy_largest"] == "" and rows[0]["val_accuracy_smallest"] == ""
    largest, smallest = float(rows[1]["val_accuracy_largest"]), float(rows[1]["val_accuracy_smallest"])
    assert 0.1 < largest <= 1 and 0 < smallest <= 1  # better than chance (10 classes) for the largest
    assert float(rows[1]["val_energy_mj_largest"]) > float(rows[1]["val_energy_mj_smallest"]) > 0
    ckpt = load_checkpoint(path)
    assert [h["epoch"] for h in ckpt.history] == [1, 2]
    assert ckpt.history[1]["val_accuracy_largest"] == pytest.approx(largest)
    # The session supernet was validated after both epochs, this one after the second only:
    # the weights are the same, so validation (BN recalibration included) leaves training alone.
    for name, tensor in ckpt.model.items():
        assert torch.equal(tensor, digits_checkpoint.weights[name]), name


def test_in_place_distillation_targets_the_largest_subnets_soft_outputs(tmp_path, digits_data, tiny_space,
                                                                       monkeypatch):
    outputs: list[tuple[str, torch.Tensor]] = []
    real_forward = SpikformerSupernet.forward

    def recording_forward(self, x):
        out = real_forward(self, x)
        if self.training:
            outputs.append((self.config.arch_id, out.detach().clone()))
        return out

    targets: list[torch.Tensor] = []
    real_soft = train_loop.SoftTargetCrossEntropy.forward

    def recording_soft(self, x, target):
        targets.append(target.detach().clone())
        return real_soft(self, x, target)

    monkeypatch.setattr(SpikformerSupernet, "forward", recording_forward)
    monkeypatch.setattr(train_loop.SoftTargetCrossEntropy, "forward", recording_soft)
    recipe = DIGITS_RECIPE.replace(epochs=1).with_rule("distill")
    train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "d.pt", data=digits_data, device="cpu",
                   progress=False, eval_every=0)
    steps = len(outputs) // 3
    assert steps > 1 and len(outputs) == 3 * steps and len(targets) == 2 * steps
    largest = tiny_space.largest().active().arch_id
    for step in range(steps):
        teacher_id, teacher = outputs[3 * step]
        assert teacher_id == largest
        # The smallest and the random subnet of the step learn the largest's probabilities.
        for target in targets[2 * step:2 * step + 2]:
            assert torch.allclose(target, teacher.softmax(dim=-1))


@pytest.mark.parametrize("terminal", [True, False])
def test_a_training_step_does_not_wait_for_the_device(tmp_path, digits_data, tiny_space, monkeypatch, terminal):
    """Our code reads no tensor on the host during an epoch but once per progress update and at its end.

    A read (item, tolist, cpu, bool, float, int) of a tensor on a GPU waits for every queued
    kernel. Counted are the reads made during epochs by any code but torch's own (whose
    optimizer reads its step counters, kept on the CPU) and our data pipeline's (CPU tensors
    in loader workers, before the transfer): our model and training loop, spikingjelly, timm.
    """
    data_pipeline = Path(train_loop.__file__).resolve().parent / "data"
    epoch = {"on": False}
    reads: list[str] = []

    def counting(method):
        def read(self, *args, **kwargs):
            if epoch["on"]:
                caller = traceback.extract_stack(limit=2)[0]
                path = Path(caller.filename).resolve()
                if "torch" not in path.parts and not path.is_relative_to(data_pipeline):
                    reads.append(f"{path.name}:{caller.lineno}")
            return method(self, *args, **kwargs)
        return read

    real_epoch = train_loop.train_epoch

    def flagged_epoch(*args, **kwargs):
        epoch["on"] = True
        try:
            return real_epoch(*args, **kwargs)
        finally:
            epoch["on"] = False

    for name in ("item", "tolist", "cpu", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    monkeypatch.setattr(train_loop, "train_epoch", flagged_epoch)
    # The bar, and with it the loss it shows, only on a terminal; in a log file a line per epoch.
    monkeypatch.setattr(train_loop.sys.stderr, "isatty", lambda: terminal)
    recipe = DIGITS_RECIPE.replace(epochs=1, batch_size=16).with_rule("distill")
    steps = len(digits_data.train) // recipe.batch_size
    train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "s.pt", data=digits_data, device="cpu",
                   progress=True, eval_every=0)
    assert steps >= 3 * train_loop.LOG_EVERY
    # One read per update of the bar (if any) and one for the epoch's mean loss; none per step.
    assert len(reads) == (steps // train_loop.LOG_EVERY if terminal else 0) + 1, reads


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.slow
def test_low_precision_training_finishes_and_resumes_bit_identically(tmp_path, digits_data, tiny_space,
                                                                     monkeypatch, precision):
    recipe = DIGITS_RECIPE.replace(batch_size=128).with_rule("distill")  # the default rule
    straight = train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "straight.pt", data=digits_data,
                              device="cpu", progress=False, precision=precision, eval_every=0)
    ckpt = load_checkpoint(tmp_path / "straight.pt")
    assert ckpt.precision == precision and (ckpt.scaler is not None) == (precision == "fp16")
    assert all(torch.isfinite(t).all() for t in ckpt.model.values())
    assert all(p.dtype == torch.float32 for p in straight.parameters())  # weights stay fp32 under autocast

    path = tmp_path / "resumed.pt"
    real_save = train_loop.save_checkpoint

    def save_then_crash(p, state):
        real_save(p, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(tiny_space, DatasetSpec("digits"), recipe, path, data=digits_data, device="cpu",
                       progress=False, precision=precision, eval_every=0)
    monkeypatch.setattr(train_loop, "save_checkpoint", real_save)
    resumed = train_supernet(tiny_space, DatasetSpec("digits"), recipe, path, resume=True, data=digits_data,
                             device="cpu", progress=False, precision=precision, eval_every=0)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_spikes_stay_binary_and_scores_agree_across_precisions(digits_checkpoint, digits_data):
    """Under autocast a neuron still emits 0 or 1; fp32, bf16 and fp16 scores agree within stated tolerances.

    Tolerances (on the digits split, one image = 0.46 points): the neurons integrate in fp32
    in every precision, but bf16 (8 mantissa bits) and fp16 (11) round the linear layers'
    outputs, so a membrane potential near the threshold may fire differently, and the short
    session checkpoint's nearly tied logits (it is near chance) flip with it: a few images
    either way. The test allows 5 points and 2% (bf16), 2 points and 1.5% (fp16).
    """
    from spikingjelly.activation_based import neuron

    from nas import EvaluationSettings, SubnetEvaluator

    net = load_checkpoint(digits_checkpoint.path).build_supernet()
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, a, out: outputs.append(out.detach()))
             for m in net.modules() if isinstance(m, neuron.LIFNode)]
    space = digits_checkpoint.space
    scores = {}
    for precision in ("fp32", "bf16", "fp16"):
        evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val,
                                    settings=EvaluationSettings(precision=precision), device="cpu")
        scores[precision] = [evaluator(c) for c in (space.largest(), space.smallest())]
    for h in hooks:
        h.remove()
    assert {out.dtype for out in outputs} >= {torch.bfloat16, torch.float16}
    for out in outputs:
        assert ((out == 0) | (out == 1)).all()
    for precision, accuracy_tol, energy_tol in (("bf16", 0.05, 0.02), ("fp16", 0.02, 0.015)):
        for low, full in zip(scores[precision], scores["fp32"]):
            assert abs(low.accuracy - full.accuracy) <= accuracy_tol
            assert low.energy.energy_mj == pytest.approx(full.energy.energy_mj, rel=energy_tol)


def test_unknown_precision_is_refused():
    from nas import EvaluationSettings
    from nas.precision import check_precision

    with pytest.raises(ConfigError, match="choose from"):
        check_precision("fp8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="choose from"):
        EvaluationSettings(precision="half")
    assert check_precision(None, torch.device("cpu")) == "fp32"


def test_ddp_looks_for_unused_parameters_only_when_blocks_can_be_skipped(tiny_space):
    from nas import SearchSpace
    from nas.train import skips_blocks

    assert min(tiny_space.genes["depth"]) < max(tiny_space.genes["depth"]) and skips_blocks(tiny_space)
    fixed = tiny_space.to_dict()
    fixed["genes"] = {**fixed["genes"], "depth": [max(tiny_space.genes["depth"])]}
    assert not skips_blocks(SearchSpace.from_dict(fixed))
