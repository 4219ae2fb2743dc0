"""The incremental study index: the same answers as a full read, and reads that stay flat."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.sampler import SpikformerNSGAIISampler, _surrogate
from nas.settings import SamplerSettings
from nas.study_index import ARCH_ATTR, ARCH_KEY, DUPLICATE_ATTR, StudyIndex, known_arch_ids, trial_arch_id
from tests.helpers import analytic_cost, fake_objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _known_by_full_read(study, space=None, exclude_number=None):
    ids = set()
    for t in study.get_trials(deepcopy=False):
        if t.number == exclude_number or t.state == TrialState.FAIL:
            continue
        arch = trial_arch_id(t)
        fixed = t.system_attrs.get("fixed_params")
        if arch is None and space is not None and fixed:
            arch = space.config_from_params(fixed).arch_id
        if arch is not None:
            ids.add(arch)
    return ids


def test_the_index_agrees_with_a_full_read_while_trials_finish_out_of_order(tiny_space):
    study = optuna.create_study()
    index = StudyIndex.of(study)
    live = [study.ask() for _ in range(6)]
    for i, trial in enumerate(live):
        trial.set_user_attr(ARCH_ATTR, f"a{i}")
    study.enqueue_trial(tiny_space.params_from_config(tiny_space.largest()))
    checks = 0
    # Finish them out of order: complete, fail, prune, complete a duplicate, ...
    for trial, state in zip([live[3], live[0], live[5], live[1], live[4], live[2]],
                            [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE,
                             TrialState.COMPLETE, TrialState.COMPLETE]):
        if trial is live[4]:
            trial.set_user_attr(DUPLICATE_ATTR, 3)
        study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
        index.refresh(study)
        # The trial left out is the one being sampled: a running one.
        for exclude in (None, live[2].number) if trial is not live[2] else (None,):
            assert index.known(tiny_space, exclude_number=exclude) == _known_by_full_read(study, tiny_space, exclude)
            checks += 1
    assert checks == 11
    assert [t.number for t in index.completed] == [3, 1, 4, 2]
    assert tiny_space.largest().arch_id in index.known(tiny_space)
    assert index.evaluated("a3").number == 3
    assert index.evaluated("a4") is None  # a copy of a twin's results, not an evaluation
    assert index.evaluated("a0") is None  # failed
    assert StudyIndex.of(study) is index


def test_a_study_deleted_and_created_again_under_its_name_is_read_afresh(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s", storage=storage)
    study.add_trial(create_trial(value=1.0, user_attrs={ARCH_ATTR: "old"}))
    assert known_arch_ids(study) == {"old"}
    optuna.delete_study(study_name="s", storage=storage)
    again = optuna.create_study(study_name="s", storage=storage)
    again.add_trial(create_trial(value=1.0, user_attrs={ARCH_ATTR: "new"}))
    assert known_arch_ids(again) == {"new"}


class _CountingStorage(optuna.storages.InMemoryStorage):
    """Counts reads of a study's whole trial list."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.reads += 1
        return super().get_all_trials(*args, **kwargs)


@pytest.mark.parametrize("candidates", [1, 4])
def test_a_proposal_does_as_much_work_late_in_a_study_as_early(tiny_space, candidates, monkeypatch):
    from nas import study_index

    storage = _CountingStorage()
    settings = SamplerSettings(population_size=10, num_parents=4, candidates=candidates, seed=3)
    sampler = SpikformerNSGAIISampler(tiny_space, settings=settings, cost=analytic_cost(tiny_space))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage)
    work = {"trials looked at": 0, "genomes encoded": 0}

    def looked_at(trial):
        work["trials looked at"] += 1
        return trial_arch_id(trial)

    def encoded(self, params):
        work["genomes encoded"] += 1
        return encode(self, params)

    encode = _surrogate.GenomeEncoder.__call__
    monkeypatch.setattr(study_index, "trial_arch_id", looked_at)
    monkeypatch.setattr(_surrogate.GenomeEncoder, "__call__", encoded)
    objective = fake_objective(tiny_space)
    per_trial = []
    for stop in (25, 65, 125):
        before = dict(work, reads=storage.reads, n=len(study.trials))
        study.optimize(objective, n_trials=stop - before["n"])
        n = stop - before["n"]
        per_trial.append({k: (v - before[k]) / n for k, v in dict(work, reads=storage.reads).items()})
    early, late = per_trial[1], per_trial[2]
    # A full read of 65 or 125 trials per proposal would look at dozens of trials per trial.
    for key in early:
        assert late[key] <= early[key] + 0.5, (key, per_trial)
    assert late["trials looked at"] < 10
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert len(ids) == len(set(ids))
    assert all(t.system_attrs[ARCH_KEY] == t.user_attrs["arch_id"] for t in study.trials)
