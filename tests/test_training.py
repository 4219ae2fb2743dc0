"""Supernet training: rules (uniform, sandwich, in-place distillation), validation while
training and its metrics file, and a loop that does not wait on the device every step."""

from __future__ import annotations

import csv
import traceback
from pathlib import Path

import pytest
import torch

import nas.train as train_module
from models import ConfigError, SpikformerSupernet
from nas import DatasetSpec, load_checkpoint
from nas.recipes import RULES, Recipe, get_recipe
from nas.train import METRICS, metrics_path, train_supernet
from tests.conftest import DIGITS_RECIPE


def test_rules_map_to_the_recipe_and_bad_ones_are_refused():
    recipe = get_recipe("digits")
    assert [recipe.with_rule(rule).rule for rule in RULES] == list(RULES)
    assert recipe.with_rule("distill").sandwich and recipe.with_rule("distill").distill
    assert recipe.with_rule(None) == recipe
    with pytest.raises(ConfigError, match="choose from"):
        recipe.with_rule("bignas")
    with pytest.raises(ConfigError, match="needs sandwich"):
        recipe.replace(distill=True)
    # Recipes stored before distillation existed (no "distill" key) still load.
    stored = recipe.to_dict()
    del stored["distill"]
    assert Recipe.from_dict(stored).rule == recipe.rule


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
    real_soft = train_module.SoftTargetCrossEntropy.forward

    def recording_soft(self, x, target):
        targets.append(target.detach().clone())
        return real_soft(self, x, target)

    monkeypatch.setattr(SpikformerSupernet, "forward", recording_forward)
    monkeypatch.setattr(train_module.SoftTargetCrossEntropy, "forward", recording_soft)
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


def test_a_training_step_does_not_wait_for_the_device(tmp_path, digits_data, tiny_space, monkeypatch):
    """Our code reads no tensor on the host during an epoch but once per progress update and at its end.

    A read (item, tolist, cpu, bool, float, int) of a tensor on a GPU waits for every queued
    kernel. Counted are the reads made during epochs by any code but torch's own (whose
    optimizer reads its step counters, kept on the CPU) and our data pipeline's (CPU tensors
    in loader workers, before the transfer): our model and training loop, spikingjelly, timm.
    """
    data_pipeline = Path(train_module.__file__).resolve().parent / "data.py"
    epoch = {"on": False}
    reads: list[str] = []

    def counting(method):
        def read(self, *args, **kwargs):
            if epoch["on"]:
                caller = traceback.extract_stack(limit=2)[0]
                path = Path(caller.filename).resolve()
                if "torch" not in path.parts and path != data_pipeline:
                    reads.append(f"{path.name}:{caller.lineno}")
            return method(self, *args, **kwargs)
        return read

    real_epoch = train_module._train_epoch

    def flagged_epoch(*args, **kwargs):
        epoch["on"] = True
        try:
            return real_epoch(*args, **kwargs)
        finally:
            epoch["on"] = False

    for name in ("item", "tolist", "cpu", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    monkeypatch.setattr(train_module, "_train_epoch", flagged_epoch)
    recipe = DIGITS_RECIPE.replace(epochs=1, batch_size=16).with_rule("distill")
    steps = len(digits_data.train) // recipe.batch_size
    train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "s.pt", data=digits_data, device="cpu",
                   progress=True, eval_every=0)
    assert steps >= 3 * train_module.LOG_EVERY
    # One read per progress update and one for the epoch's mean loss; none per step.
    assert len(reads) == steps // train_module.LOG_EVERY + 1, reads
