from __future__ import annotations

import optuna
import pytest
import torch

import nas.train_loop as train_loop
from nas import (
    AEBSettings,
    Budgets,
    DatasetSpec,
    EvaluationSettings,
    SubnetEvaluator,
    SubnetObjective,
    load_checkpoint,
    save_checkpoint,
)
from nas.train import train_supernet
from tests.conftest import DIGITS_RECIPE

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_checkpoint_is_weights_only_safe_and_complete(digits_checkpoint):
    state = torch.load(digits_checkpoint.path, weights_only=True)
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert state["space"] == digits_checkpoint.space.to_dict() and state["dataset"]["name"] == "digits"
    assert state["recipe"] == DIGITS_RECIPE.to_dict()
    assert {"model", "optimizer", "scheduler", "rng", "recipe", "supernet"} <= set(state)
    ckpt = load_checkpoint(digits_checkpoint.path)
    assert ckpt.space == digits_checkpoint.space and ckpt.dataset == DatasetSpec("digits")
    assert ckpt.recipe == DIGITS_RECIPE and ckpt.epoch == 2 and ckpt.seed == 0
    assert _same_state(ckpt.to_state(), state)
    rebuilt = ckpt.build_supernet()
    assert not rebuilt.training and ckpt.supernet_cfg == rebuilt.supernet_cfg
    rebuilt_weights = rebuilt.state_dict()
    assert rebuilt_weights.keys() == digits_checkpoint.weights.keys()
    for name, trained in digits_checkpoint.weights.items():
        assert torch.equal(rebuilt_weights[name], trained), name


def _same_state(a, b) -> bool:
    """Equal nested containers of tensors and plain values; lists and tuples are told apart."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return type(a) is type(b) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_state, a, b))
    return a == b


def test_checkpoint_round_trips_through_save_and_load(digits_checkpoint, tmp_path):
    path = digits_checkpoint.path
    save_checkpoint(tmp_path / "copy.pt", load_checkpoint(path))
    assert _same_state(torch.load(tmp_path / "copy.pt", weights_only=True), torch.load(path, weights_only=True))
    assert [p.name for p in tmp_path.iterdir()] == ["copy.pt"]


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, digits_data, digits_checkpoint, monkeypatch):
    path = tmp_path / "resumed.pt"
    real_save = train_loop.save_checkpoint  # the name the training loop calls

    def save_then_crash(p, ckpt):
        real_save(p, ckpt)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(digits_checkpoint.space, DatasetSpec("digits"), DIGITS_RECIPE, path, data=digits_data,
                       device="cpu", progress=False)
    assert load_checkpoint(path).epoch == 1
    monkeypatch.setattr(train_loop, "save_checkpoint", real_save)
    resumed = train_supernet(digits_checkpoint.space, DatasetSpec("digits"), DIGITS_RECIPE, path, resume=True,
                             data=digits_data, device="cpu", progress=False)
    assert load_checkpoint(path).epoch == 2
    resumed_weights = resumed.state_dict()
    assert resumed_weights.keys() == digits_checkpoint.weights.keys()
    for name, trained in digits_checkpoint.weights.items():
        assert torch.equal(resumed_weights[name], trained), name


def test_corrupt_and_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is corrupt or not a supernet checkpoint"):
        load_checkpoint(bad)


def test_checkpoint_without_some_keys_is_a_one_line_error_naming_them(digits_checkpoint, tmp_path):
    state = torch.load(digits_checkpoint.path, weights_only=True)
    del state["optimizer"], state["rng"]
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(ValueError) as err:
        load_checkpoint(partial)
    message = str(err.value)
    assert "\n" not in message and str(partial) in message
    assert "'optimizer'" in message and "'rng'" in message and "'model'" not in message
    torch.save({"format": 1, "supernet": state["supernet"], "config": {}, "model": {}}, partial)
    with pytest.raises(ValueError, match="lacks the keys"):
        load_checkpoint(partial)


def test_training_leaves_the_callers_random_state_as_it_was(tiny_space, digits_data, tmp_path):
    recipe = DIGITS_RECIPE.replace(epochs=1)
    torch.manual_seed(1234)
    torch.rand(3)
    before = torch.get_rng_state()
    train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "a.pt", data=digits_data,
                   progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    train_supernet(tiny_space, DatasetSpec("digits"), recipe, tmp_path / "a.pt", resume=True,
                   data=digits_data, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    load_checkpoint(tmp_path / "a.pt").build_supernet()
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_refuses_a_checkpoint_of_another_space(digits_checkpoint, digits_data):
    from nas.space import load_space

    before = digits_checkpoint.path.read_bytes()
    with pytest.raises(ValueError, match="trained for another space or data set"):
        train_supernet(load_space("digits"), DatasetSpec("digits"), DIGITS_RECIPE, digits_checkpoint.path,
                       resume=True, data=digits_data, progress=False)
    assert digits_checkpoint.path.read_bytes() == before


def test_evaluation_does_not_depend_on_batch_size_and_is_cached(digits_checkpoint, digits_data):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    configs = [space.largest(), space.smallest()]
    small = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=EvaluationSettings(batch_size=7))
    large = SubnetEvaluator(net, digits_data.train_eval, digits_data.val, settings=EvaluationSettings(batch_size=500))
    for cfg in configs:
        a, b = small(cfg), large(cfg)
        assert a.accuracy == b.accuracy
        assert a.energy.energy_mj == pytest.approx(b.energy.energy_mj, rel=1e-5)
        assert a.energy.images == len(digits_data.val)
    assert small(configs[0]) is small(configs[0])


def test_recalibration_makes_scores_independent_of_history(digits_checkpoint, digits_data):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    a, b = space.largest(), space.smallest()
    first = SubnetEvaluator(net, digits_data.train_eval, digits_data.val)(a)
    SubnetEvaluator(net, digits_data.train_eval, digits_data.val)(b)
    again = SubnetEvaluator(net, digits_data.train_eval, digits_data.val)(a)
    assert first.accuracy == again.accuracy
    assert first.energy.energy_mj == pytest.approx(again.energy.energy_mj, rel=1e-6)
    assert first.energy.energy_mj > 0 and first.params > 0


@pytest.mark.parametrize("objective", ["aeb", "pareto"])
def test_objective_records_attrs_constraints_and_reuses_twins(digits_checkpoint, digits_data, objective):
    space, net = digits_checkpoint.space, digits_checkpoint.load()
    evaluator = SubnetEvaluator(net, digits_data.train_eval, digits_data.val)
    e_ref = evaluator(space.largest()).energy.energy_mj
    obj = SubnetObjective(space, evaluator, objective, AEBSettings(e_ref=e_ref), Budgets(max_params=3000))
    directions = ["maximize"] if objective == "aeb" else ["maximize", "minimize"]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(space.params_from_config(space.largest()))
    study.enqueue_trial(space.params_from_config(space.largest()))
    study.optimize(obj, n_trials=4)
    first, twin = study.trials[0], study.trials[1]
    for key in ("accuracy", "energy_mj", "sops", "macs", "params", "firing_rate", "f_aeb", "arch_id", "config"):
        assert key in first.user_attrs
    assert first.user_attrs["f_aeb"] == pytest.approx(first.user_attrs["accuracy"])  # E == E_ref
    assert twin.user_attrs["duplicate_of"] == 0 and twin.values == first.values
    assert first.constraints["params"] == first.user_attrs["params"] - 3000
