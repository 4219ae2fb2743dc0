"""A study's life: create (all of it, or a half-created study that the next create replaces), delete, names."""

from __future__ import annotations

import io
import logging
import os
import random
import re
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from models import ConfigError
from nas.settings import DIRECTIONS, METRIC_NAMES, SamplerSettings
from studies.cli import main
from studies.errors import StudyError
from studies.layer_artifacts import ARTIFACT_ATTR
from studies.settings import SETTINGS_ATTR
from studies.storage import open_storage
from studies.study import create, load
from studies.workers import run_worker
from tests.helpers import CLI, ENV, fails

SMALL = SamplerSettings(population_size=4, num_parents=2)
SMALL_FLAGS = ["--population-size", "4", "--num-parents", "2"]


def _create_args(storage: str, name: str, checkpoint) -> list[str]:
    # A given E_ref skips measuring the largest subnet: create is then all storage writes.
    return ["create", "--storage", storage, "--study-name", name, "--objective", "pareto", "--checkpoint",
            str(checkpoint), "--e-ref", "1.0", *SMALL_FLAGS]


def _half_create(storage: str, name: str, *, enqueued: bool) -> None:
    """What a `create` killed after its first writes leaves: the study row and metric names, and
    perhaps the largest subnet it enqueues, but no settings."""
    study = optuna.create_study(storage=storage, study_name=name, directions=DIRECTIONS["pareto"])
    study.set_metric_names(METRIC_NAMES["pareto"])
    if enqueued:
        study.set_user_attr("objective", "pareto")
        study.enqueue_trial({"depth": 2}, user_attrs={"enqueued": "largest"})


@pytest.mark.parametrize("enqueued", [False, True], ids=["row-and-metric-names", "up-to-the-enqueued-subnet"])
def test_a_half_created_study_says_so_and_create_replaces_it(tmp_path, digits_checkpoint, capsys, caplog,
                                                              enqueued):
    storage = f"sqlite:///{tmp_path}/half.db"
    _half_create(storage, "s", enqueued=enqueued)
    with pytest.raises(StudyError, match=r"study 's' is half-created: .* run the same create again to replace it, "
                                         r"or remove it with `autospk-study delete --study-name s`$"):
        load(storage, "s")
    err = fails(capsys, "show", "--storage", storage, "--study-name", "s")
    assert "half-created" in err and len(err.strip().splitlines()) == 1

    with caplog.at_level(logging.WARNING, logger="studies.study"):
        study = create(storage, "s", objective="pareto", checkpoint=digits_checkpoint.path, sampler=SMALL)
    assert "study 's' was half-created (an interrupted create); deleting it and creating it anew" in caplog.text
    loaded, settings = load(storage, "s")
    assert loaded._study_id == study._study_id and settings.sampler == SMALL
    [largest] = loaded.get_trials()
    assert largest.state == TrialState.WAITING and largest.user_attrs == {"enqueued": "largest", "baseline": True}
    assert largest.system_attrs["fixed_params"] == settings.space.params_from_config(settings.space.largest())


def test_a_study_with_trials_but_no_settings_is_neither_replaced_nor_loaded(tmp_path, digits_checkpoint):
    storage = f"sqlite:///{tmp_path}/foreign.db"
    foreign = optuna.create_study(storage=storage, study_name="foreign")
    foreign.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(StudyError, match="study 'foreign' was not created by autospk-study create"):
        load(storage, "foreign")
    with pytest.raises(StudyError, match="study 'foreign' already exists"):
        create(storage, "foreign", objective="pareto", checkpoint=digits_checkpoint.path, sampler=SMALL)
    assert len(optuna.load_study(study_name="foreign", storage=storage).trials) == 1


def _wait_for_study(storage: str, name: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Return once the study's row exists or `proc` has ended."""
    store = open_storage(storage)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if any(s.study_name == name for s in store.get_all_studies()):
            return
        time.sleep(0.002)


@pytest.mark.slow
def test_create_killed_at_random_moments_always_leaves_the_name_reusable(tmp_path, digits_checkpoint, capsys,
                                                                        caplog):
    storage = f"sqlite:///{tmp_path}/killed.db"
    args = _create_args(storage, "s", digits_checkpoint.path)
    rng = random.Random(0)
    left = []
    for attempt in range(2):
        proc = subprocess.Popen([*CLI, *args], env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _wait_for_study(storage, "s", proc)
        # The first kill comes as soon as the row exists; the others a little later, at random.
        time.sleep(0 if attempt == 0 else rng.uniform(0, 0.03))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        summaries = {s.study_name: s for s in optuna.get_all_study_summaries(open_storage(storage))}
        complete = "s" in summaries and SETTINGS_ATTR in summaries["s"].user_attrs
        left.append("complete" if complete else "half-created" if "s" in summaries else "nothing")

        caplog.clear()
        if complete:
            assert "study 's' already exists" in fails(capsys, *args)
        else:
            assert main(args) == 0, capsys.readouterr().err
            assert ("was half-created" in caplog.text) == (left[-1] == "half-created")
        study, settings = load(storage, "s")
        [largest] = study.get_trials()
        assert largest.system_attrs["fixed_params"] == settings.space.params_from_config(settings.space.largest())
        assert main(["delete", "--storage", storage, "--study-name", "s", "--yes"]) == 0
        assert not optuna.get_all_study_summaries(open_storage(storage))
    assert "half-created" in left, f"no kill landed between the study's row and its settings: {left}"


class _Terminal(io.StringIO):
    """Standard input that is a terminal, holding what someone typed."""

    def isatty(self) -> bool:
        return True


def test_delete_asks_on_a_terminal_and_refuses_without_yes_elsewhere(tmp_path, digits_checkpoint, capsys,
                                                                     monkeypatch):
    storage = f"sqlite:///{tmp_path}/del.db"
    assert main(_create_args(storage, "s", digits_checkpoint.path)) == 0
    capsys.readouterr()

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    err = fails(capsys, "delete", "--storage", storage, "--study-name", "s")
    assert "not deleting study 's' (1 trial) without --yes" in err and len(err.strip().splitlines()) == 1

    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main(["delete", "--storage", storage, "--study-name", "s"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("delete study 's' and its 1 trial from sqlite:///") and "study 's' kept" in out
    load(storage, "s")

    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(["delete", "--storage", storage, "--study-name", "s"]) == 0
    assert "deleted study 's' and its 1 trial" in capsys.readouterr().out
    assert not optuna.get_all_study_summaries(open_storage(storage))
    assert "no study 's'" in fails(capsys, "delete", "--storage", storage, "--study-name", "s", "--yes")


def test_delete_removes_the_studys_artifacts_and_no_other(tmp_path, digits_checkpoint, capsys):
    storage = f"sqlite:///{tmp_path}/art.db"
    for name in ("a", "b"):
        assert main([*_create_args(storage, name, digits_checkpoint.path)]) == 0
        run_worker(storage, name, n_trials=2, device="cpu")
    folder = tmp_path / "art.db.artifacts"
    files = {name: {t.user_attrs[ARTIFACT_ATTR] for t in load(storage, name)[0].trials} for name in ("a", "b")}
    assert all(len(ids) == 2 for ids in files.values())
    assert {p.name for p in folder.iterdir()} == files["a"] | files["b"]
    assert main(["delete", "--storage", storage, "--study-name", "a", "--yes"]) == 0
    assert {p.name for p in folder.iterdir()} == files["b"]


@pytest.mark.parametrize("name", ["", " ", "\t\n"])
def test_a_blank_study_name_is_refused(tmp_path, digits_checkpoint, capsys, name):
    storage = f"sqlite:///{tmp_path}/names.db"
    with pytest.raises(ConfigError, match=re.escape(f"study name {name!r} is blank; give a name with at least "
                                                    "one visible character")):
        create(storage, name, objective="pareto", checkpoint=digits_checkpoint.path, sampler=SMALL)
    with pytest.raises(SystemExit) as exit_info:
        main(_create_args(storage, name, digits_checkpoint.path))
    assert exit_info.value.code == 2
    assert f"argument --study-name: study name {name!r} is blank" in capsys.readouterr().err
    assert not optuna.get_all_study_summaries(open_storage(storage))
