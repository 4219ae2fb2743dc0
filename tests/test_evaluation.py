"""Streaming evaluation, scored subsets of the validation split, and early rejection."""

from __future__ import annotations

import random

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from scipy.stats import hypergeom

from energy import EnergyMonitor
from models import ConfigError
from nas import AEBSettings, EvaluationSettings, SamplerSettings, SubnetEvaluator
from nas.data import split_labels, stratified_subset
from nas.objective import SubnetObjective
from nas.rejection import accuracy_upper_bound, aeb_rule, energy_lower_bound, pareto_rule
from nas.study_index import StudyIndex
from studies.export import export_trial
from studies.results import trials_frame
from studies.study import create, load
from studies.workers import FINISHED, run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)

REJECTING = EvaluationSettings(batch_size=50, early_rejection=True, rejection_min_images=50)
"""Early rejection checked after every 50 of digits' 216 validation images."""


def _reference_score(net, config, calibration, split, settings=EvaluationSettings()):
    """Accuracy and energy as written out by hand: fresh BN averages over the first training
    batches, then eval mode over the split in batches of the evaluation batch size."""
    def stacked(dataset, start, stop):
        items = [dataset[i] for i in range(start, min(stop, len(dataset)))]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    net.set_subnet(config)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        net.train()
        size = settings.calib_batch_size
        for b in range(settings.calib_batches):
            net(stacked(calibration, b * size, (b + 1) * size)[0])
        for m in norms:
            m.momentum = 0.1
        net.eval()
        correct = 0
        with EnergyMonitor(net, profile=settings.profile) as monitor:
            for start in range(0, len(split), settings.batch_size):
                x, y = stacked(split, start, start + settings.batch_size)
                correct += int((net(x).argmax(dim=1) == y).sum())
        return correct / len(split), monitor.report().energy_mj


def test_streamed_scores_equal_a_reference_computed_by_hand(digits_checkpoint, digits_data):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    settings = EvaluationSettings(batch_size=100)
    streamed = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=settings)
    with_reader = SubnetEvaluator(net, digits_data.train_eval, digits_data.val,
                                  settings=EvaluationSettings(batch_size=100, loader_workers=1))
    for config in (space.largest(), space.smallest()):
        score = streamed(config)
        accuracy, energy = _reference_score(net, config, digits_data.train_eval, digits_data.val, settings)
        assert score.accuracy == accuracy and score.energy.energy_mj == energy
        assert score.images_scored == len(digits_data.val) and score.attrs()["eval_images_scored"] == 216
        again = with_reader(config)
        assert again.accuracy == accuracy and again.energy.energy_mj == energy


def test_eval_images_scores_a_fixed_stratified_subset(digits_checkpoint, digits_data):
    labels = split_labels(digits_data.val)
    assert len(labels) == 216 and np.array_equal(labels, [digits_data.val[i][1] for i in range(216)])
    subset = stratified_subset(labels, 60)
    assert np.array_equal(subset, stratified_subset(labels, 60)) and np.all(np.diff(subset) > 0)
    shares = np.bincount(labels, minlength=10) * 60 / 216
    assert np.all(np.abs(np.bincount(labels[subset], minlength=10) - shares) < 1)
    # A class whose share rounds to nothing still gets an image.
    skewed = np.array([0] * 50 + [1] * 30 + [2] * 3)
    assert np.bincount(skewed[stratified_subset(skewed, 10)]).tolist() == [5, 4, 1]

    space, net = digits_checkpoint.space, digits_checkpoint.load()
    settings = EvaluationSettings(eval_images=60, batch_size=25)
    evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=settings)
    assert evaluator.images == 60 and list(evaluator.scored_split.indices) == subset.tolist()
    score = evaluator(space.largest())
    chosen = torch.utils.data.Subset(digits_data.val, subset.tolist())
    accuracy, energy = _reference_score(net, space.largest(), digits_data.train_eval, chosen, settings)
    assert score.accuracy == accuracy and score.energy.energy_mj == energy and score.images_scored == 60

    whole = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=EvaluationSettings(eval_images=216))
    assert whole.scored_split is digits_data.val
    with pytest.raises(ConfigError, match=r"eval_images=9 is fewer than the 10 classes .* choose 10\.\.216"):
        SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=EvaluationSettings(eval_images=9))
    with pytest.raises(ConfigError, match=r"eval_images=217 is more than the 216 images .* at most 216"):
        SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=EvaluationSettings(eval_images=217))


def test_certain_bounds_hold_for_any_remaining_images():
    assert accuracy_upper_bound(30, 50, 200) == (30 + 150) / 200
    assert accuracy_upper_bound(30, 200, 200) == 30 / 200
    # The MAC part of every image left is paid for sure; the spikes it would add are not.
    assert energy_lower_bound(3.0, 1.0, 50, 200) == pytest.approx((50 * 3.0 + 150 * 1.0) / 200, rel=2e-4)
    assert energy_lower_bound(3.0, 1.0, 50, 200) < (50 * 3.0 + 150 * 1.0) / 200


@pytest.mark.parametrize("scored,right", [(50, 150), (100, 190), (20, 10)])
def test_statistical_bound_is_tighter_and_misses_at_most_its_level(scored, right):
    total, confidence = 200, 0.9
    bounds = np.array([accuracy_upper_bound(k, scored, total, confidence=confidence) for k in range(scored + 1)])
    certain = np.array([accuracy_upper_bound(k, scored, total) for k in range(scored + 1)])
    assert np.all(bounds <= certain) and np.all(np.diff(bounds) >= 0)
    # Exactly: the chance, over uniformly random orders, that the bound falls below the truth.
    missed = sum(hypergeom.pmf(k, total, right, scored) for k in range(scored + 1) if bounds[k] < right / total)
    assert missed <= 1 - confidence
    split = accuracy_upper_bound(scored // 2, scored, total, confidence=confidence, checks=5)
    assert bounds[scored // 2] <= split <= certain[scored // 2]


def test_rules_reject_only_what_is_beaten_for_sure():
    rule = pareto_rule([(0.9, 2.0), (0.8, 1.0)])
    assert rule(0.85, 2.5) and rule(0.8, 1.5) and rule(0.7, 1.0)
    assert not rule(0.9, 2.0)  # the same point is not dominated
    assert not rule(0.95, 3.0) and not rule(0.85, 1.5) and not rule(0.7, 0.9)
    aeb = AEBSettings(e_ref=2.0)
    assert aeb_rule(0.8, aeb)(0.7, 2.0) and not aeb_rule(0.8, aeb)(0.8, 2.0)
    assert not aeb_rule(0.8, aeb)(0.79, 1.0)  # cheaper makes up for it: 0.79 * 0.5 ** -0.07 > 0.8


def _front_trial(space, values: list[float]) -> optuna.trial.FrozenTrial:
    """A complete trial of the smallest subnet with made-up objective values."""
    params = space.params_from_config(space.smallest())
    distributions = {name: CategoricalDistribution(space.choices(name)) for name in params}
    return optuna.trial.create_trial(params=params, distributions=distributions, values=values,
                                     user_attrs={"arch_id": "made-up"})


@pytest.mark.parametrize("objective", ["pareto", "aeb"])
def test_a_subnet_that_cannot_matter_is_pruned_part_way(digits_checkpoint, digits_data, objective):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=REJECTING)
    obj = SubnetObjective(space, evaluator, objective, AEBSettings(e_ref=1.0))
    directions = ["maximize", "minimize"] if objective == "pareto" else ["maximize"]
    study = optuna.create_study(directions=directions)
    # Unbeatable: perfect at (almost) no energy, or an F_AEB no accuracy reaches.
    study.add_trial(_front_trial(space, [1.0, 1e-12] if objective == "pareto" else [10.0]))
    study.enqueue_trial(space.params_from_config(space.largest()))
    study.optimize(obj, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    attrs = trial.user_attrs
    assert attrs["rejected"] is True and attrs["eval_images_scored"] == 50
    assert 0 <= attrs["partial_accuracy"] <= 1 and attrs["partial_energy_mj"] > 0
    assert attrs["accuracy_bound"] == pytest.approx(attrs["partial_accuracy"] * 50 / 216 + 166 / 216)
    assert 0 < attrs["energy_bound_mj"] < attrs["partial_energy_mj"]
    assert "accuracy" not in attrs and "energy_mj" not in attrs and "f_aeb" not in attrs
    # A rejection depends on the front of its time, so it is not cached: a full score follows.
    assert evaluator(space.largest()).images_scored == 216


def test_a_subnet_on_the_front_is_never_rejected(digits_checkpoint, digits_data):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    full = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=REJECTING)
    rng = np.random.default_rng(0)
    configs = [space.largest(), space.smallest()] + [space.sample(random.Random(i)) for i in range(4)]
    scores = {c.arch_id: full(c) for c in configs}
    kept = 0
    for i, config in enumerate(configs):
        mine = scores[config.arch_id]
        acc, energy = mine.accuracy, mine.energy.energy_mj
        # Points that miss dominating the subnet by the least possible margin: as accurate
        # but a hair costlier, one image less accurate but far cheaper, and random neighbours.
        near = [(acc, energy * (1 + 1e-9)), (acc - 1 / 216, energy * 0.2), (acc, energy)]
        near += [(acc + d, energy * (1 + abs(e))) for d, e in rng.normal(0, 0.05, (20, 2))]
        front = [(s.accuracy, s.energy.energy_mj) for a, s in scores.items() if a != config.arch_id]
        front += [(a, e) for a, e in near if not (a >= acc and e <= energy and (a > acc or e < energy))]
        if i % 2:
            front.append((1.0, energy * 0.2))  # beats it clearly: found out at the first check
        fresh = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=REJECTING)
        result = fresh(config, reject=pareto_rule(front))
        assert result.rejected or not i % 2
        if result.rejected:
            assert pareto_rule(front)(acc, energy), f"{config.arch_id} rejected though nothing dominates it"
        else:
            kept += 1
            assert result.accuracy == acc and result.energy.energy_mj == energy
    assert kept


def test_search_with_early_rejection_stores_its_settings_and_export_scores_the_whole_test_split(
        tmp_path, digits_checkpoint, digits_data):
    storage = f"sqlite:///{tmp_path}/s.db"
    evaluation = EvaluationSettings(eval_images=100, batch_size=20, early_rejection=True, rejection_min_images=20)
    create(storage, "s", objective="pareto", checkpoint=digits_checkpoint.path, evaluation=evaluation,
           sampler=SamplerSettings(population_size=4), device="cpu")
    study, settings = load(storage, "s")
    assert settings.evaluation == evaluation
    # Beats every subnet that costs more than half the largest one (the tiny supernet is far from 99%).
    study.add_trial(_front_trial(settings.space, [0.99, settings.aeb.e_ref / 2]))
    run_worker(storage, "s", n_trials=8, device="cpu")
    trials = study.get_trials(deepcopy=False)
    assert len([t for t in trials if t.state in FINISHED]) == 8 and all(t.state in FINISHED for t in trials)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and "eval_images_scored" in t.user_attrs]
    assert pruned and complete
    assert all(t.user_attrs["eval_images_scored"] < 100 for t in pruned)
    assert all(t.user_attrs["eval_images_scored"] == 100 for t in complete)
    ids = [t.user_attrs.get("arch_id") for t in trials]
    assert len(ids) == len(set(ids))  # a rejected architecture is not proposed again
    assert len(trials_frame(study, settings)) == len(complete) + 1
    result = export_trial(study, settings, tmp_path / "export", trial=complete[0].number, device="cpu")
    assert result["val_images"] == 100 and result["test_images"] == len(digits_data.test)
    assert result["val_accuracy"] == complete[0].user_attrs["accuracy"]


def test_pareto3_rejection_counts_parameters_known_before_the_subnet_runs(tiny_space):
    from types import SimpleNamespace

    from models import count_params
    from nas.fitness import AEBSettings
    from nas.objective import SubnetObjective
    from nas.settings import EvaluationSettings

    supernet_cfg = tiny_space.supernet_config(in_channels=1, img_size=8, num_classes=10)
    evaluator = SimpleNamespace(settings=EvaluationSettings(early_rejection=True),
                                net=SimpleNamespace(supernet_cfg=supernet_cfg))
    objective = SubnetObjective(tiny_space, evaluator, "pareto3", AEBSettings(e_ref=1.0))
    config = tiny_space.smallest()
    params = count_params(supernet_cfg, config)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])

    def rule_after(*values):
        study.add_trial(optuna.trial.create_trial(values=list(values)))
        StudyIndex.of(study).refresh(study)
        return objective._rejection_rule(study, config)

    # Better in accuracy and energy, but with more parameters: the subnet may still be on the 3-D front.
    assert not rule_after(0.99, 0.001, params + 1)(0.5, 0.01)
    # As good with as many parameters: only a strictly better point rejects.
    assert not rule_after(0.5, 0.01, params)(0.5, 0.01)
    assert rule_after(0.5, 0.009, params)(0.5, 0.01)
    # Fewer parameters and at least as good in both: dominated.
    rule = rule_after(0.5, 0.01, params - 1)
    assert rule(0.5, 0.01) and not rule(0.51, 0.01) and not rule(0.5, 0.0089)
