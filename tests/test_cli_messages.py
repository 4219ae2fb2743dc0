"""What the command line says: storages it must not create, totals already reached, settings
that differ from a study's, Ctrl-C, failed workers, progress in a log file, --verbose/--quiet
and --version. Each case checks its exact message."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from importlib.metadata import version

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas import load_checkpoint, save_checkpoint
from studies.cli import main
from studies.optuna_log import quiet_optuna
from studies.outcomes import WorkerFailure, failures_summary
from studies.progress import search_summary
from studies.recovery import WORKER_ATTR
from studies.storage import open_storage
from studies.study import load
from tests.helpers import CLI, DIGITS_FINGERPRINT, ENV, fails, run

CREATE_HINT = "check the URL, or create a study there with `autospk-study create`"


# ----------------------------------------------------------------------------- storages are never made by reading

READING = [["list"], ["show", "--study-name", "s"], ["plot", "--study-name", "s"], ["export", "--study-name", "s"],
           ["delete", "--study-name", "s", "--yes"], ["optimize", "--study-name", "s", "--n-trials", "1"]]


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_a_mistyped_sqlite_url_is_an_error_naming_the_file_and_the_storages_beside_it(tmp_path, capsys, command):
    open_storage(f"sqlite:///{tmp_path}/autospk.db")  # the storage the user meant
    err = fails(capsys, *command, "--storage", f"sqlite:///{tmp_path}/autospk.dbb")
    assert err == (f"autospk-study: error: storage sqlite:///{tmp_path}/autospk.dbb does not exist: no file "
                   f"{tmp_path}/autospk.dbb (sqlite storages in {tmp_path}: autospk.db); {CREATE_HINT}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autospk.db"]


def test_list_in_an_empty_folder_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSPK_STORAGE", raising=False)
    err = fails(capsys, "list")
    assert err == (f"autospk-study: error: storage sqlite:///{tmp_path}/autospk.db does not exist: no file "
                   f"{tmp_path}/autospk.db (no sqlite storage in {tmp_path}); {CREATE_HINT}\n")
    assert not list(tmp_path.iterdir())


def test_a_missing_journal_file_is_not_created(tmp_path, capsys):
    open_storage(f"journal://{tmp_path}/study.log")
    err = fails(capsys, "show", "--storage", f"journal://{tmp_path}/studies.log", "--study-name", "s")
    assert err == (f"autospk-study: error: storage journal://{tmp_path}/studies.log does not exist: no file "
                   f"{tmp_path}/studies.log (journal storages in {tmp_path}: study.log); {CREATE_HINT}\n")
    err = fails(capsys, "list", "--storage", f"journal://{tmp_path}/gone/study.log")
    assert f"(folder {tmp_path}/gone does not exist)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.log"]


def test_a_database_without_optuna_tables_gets_none_on_reading(tmp_path, capsys):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    err = fails(capsys, "list", "--storage", f"sqlite:///{path}")
    assert err == (f"autospk-study: error: storage sqlite:///{path} holds no studies: the database has no Optuna "
                   f"tables; {CREATE_HINT}\n")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("notes",)]


def test_a_storage_without_that_study_names_the_studies_it_holds(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="digits-aeb", storage=open_storage(url))
    err = fails(capsys, "show", "--storage", url, "--study-name", "digits-aeb2")
    assert err == f"autospk-study: error: no study 'digits-aeb2' in {url}; studies there: ['digits-aeb']\n"


# ----------------------------------------------------------------------------- create --skip-if-exists


@pytest.mark.slow
def test_skip_if_exists_reuses_only_a_study_made_the_same_way(tmp_path, digits_checkpoint, capsys):
    checkpoint = tmp_path / "supernet.pt"
    shutil.copy(digits_checkpoint.path, checkpoint)
    storage = f"sqlite:///{tmp_path}/s.db"
    # No --num-parents: it follows the population, max(2, 4 // 5) = 2.
    args = ["create", "--storage", storage, "--study-name", "s", "--objective", "aeb", "--checkpoint",
            str(checkpoint), "--population-size", "4"]
    assert main(args) == 0
    assert load(storage, "s")[1].sampler.num_parents == 2
    assert main([*args, "--skip-if-exists"]) == 0
    assert capsys.readouterr().out.endswith(f"study 's' (aeb) in {storage}\n")

    fix = "create it with the stored settings, choose another study name, or delete the study first"
    err = fails(capsys, *args, "--skip-if-exists", "--population-size", "6", "--alpha", "-0.1")
    assert err == ("autospk-study: error: study 's' exists with other settings: aeb.alpha=-0.07, not -0.1; "
                   f"sampler.population_size=4, not 6; {fix}\n")

    save_checkpoint(checkpoint, dataclasses.replace(load_checkpoint(checkpoint), data_fingerprint="retrained"))
    mismatch = (f"checkpoint {checkpoint} is not the supernet the study was created with: it was trained on digits, "
                f"split seed 0 with data fingerprint retrained, the study's on digits, split seed 0 with data "
                f"fingerprint {DIGITS_FINGERPRINT}; put the study's checkpoint back, or create a new study on this "
                "one")
    err = fails(capsys, *args, "--skip-if-exists")
    assert err == f"autospk-study: error: study 's' exists, but its {mismatch}\n"

    # optimize checks the checkpoint before it starts a worker: one line, not one traceback per worker.
    proc = run("optimize", "--storage", storage, "--study-name", "s", "--n-trials", "4", "--workers", "2",
               check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"autospk-study: error: {mismatch}\n")
    assert len(load(storage, "s")[0].get_trials()) == 1  # the largest subnet, still waiting


# ----------------------------------------------------------------------------- optimize --n-trials is a total


@pytest.mark.slow
def test_n_trials_is_the_total_and_a_total_already_reached_says_so(tmp_path, digits_checkpoint, capsys):
    storage = f"journal://{tmp_path}/n.log"
    assert main(["create", "--storage", storage, "--study-name", "s", "--objective", "aeb", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "4"]) == 0
    quiet = run("optimize", "--storage", storage, "--study-name", "s", "--n-trials", "2", "--quiet")
    assert (quiet.stdout, quiet.stderr) == ("study 's': 2 finished trials (2 new)\n", "")
    more = run("optimize", "--storage", storage, "--study-name", "s", "--n-trials", "3")
    assert re.fullmatch(r"s: 3/3 trials, front \d, best F_AEB 0\.\d{4}\nstudy 's': 3 finished trials \(1 new\)\n",
                        more.stdout), more.stdout
    capsys.readouterr()
    assert main(["optimize", "--storage", storage, "--study-name", "s", "--n-trials", "2"]) == 0
    assert capsys.readouterr().out == ("study 's' already holds 3 finished trials and --n-trials 2 is the total it "
                                       "should hold: nothing to do (for 2 more, give --n-trials 5)\n")
    assert len(load(storage, "s")[0].get_trials()) == 3


# ----------------------------------------------------------------------------- Ctrl-C


def _running_trial(storage: str, name: str, genes: int, deadline: float) -> int | None:
    store = open_storage(storage)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        study = optuna.load_study(study_name=name, storage=store)
        evaluating = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))
                      if WORKER_ATTR in t.system_attrs and len(t.params) == genes]
        if evaluating:
            return evaluating[0]
    return None


@pytest.mark.parametrize("whom", ["terminal", "parent"])
@pytest.mark.slow
def test_ctrl_c_is_one_line_and_fails_the_running_trials(tmp_path, digits_checkpoint, whom):
    storage = f"journal://{tmp_path}/c.log"
    # slow trials (many calibration batches, batches of 2) so that Ctrl-C lands mid-trial
    assert main(["create", "--storage", storage, "--study-name", "c", "--objective", "aeb", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "4", "--calib-batches", "8",
                 "--eval-batch-size", "2"]) == 0
    proc = subprocess.Popen([*CLI, "optimize", "--storage", storage, "--study-name", "c", "--n-trials", "50"],
                            env=ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _running_trial(storage, "c", len(digits_checkpoint.space.param_names()), time.monotonic() + 120)
        assert victim is not None, "no trial was seen running"
        # A terminal sends SIGINT to the whole foreground process group; `kill -INT` to the parent alone.
        if whom == "terminal":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, err) == (130, "autospk-study: interrupted\n")
    study = optuna.load_study(study_name="c", storage=open_storage(storage))
    assert study.trials[victim].state == TrialState.FAIL
    assert not study.get_trials(states=(TrialState.RUNNING,))


# ----------------------------------------------------------------------------- failures in one line per cause


def test_failures_are_grouped_by_cause_most_frequent_first_workers_in_index_order():
    # In the order they died, which is not their index order.
    failures = [WorkerFailure(2, 102, "ConfigError: bad data", "tb"), WorkerFailure(0, 100, "killed by SIGKILL"),
                WorkerFailure(1, 101, "ConfigError: bad data", "tb")]
    assert failures_summary(failures) == ("  2 workers 1 (pid 101), 2 (pid 102): ConfigError: bad data\n"
                                          "  worker 0 (pid 100): killed by SIGKILL")


def test_a_failed_trial_logs_no_traceback_unless_verbose(capfd):
    def fails(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise ValueError("boom")

    try:
        for verbose in (False, True):
            quiet_optuna(verbose)
            with pytest.raises(ValueError, match="boom"):
                optuna.create_study().optimize(fails, n_trials=1)
            err = capfd.readouterr().err
            if verbose:
                assert "Traceback" in err and "Trial 0 failed with value None." in err
            else:
                assert err == ""
    finally:
        quiet_optuna()


# ----------------------------------------------------------------------------- progress


def test_search_summary_names_the_front_size_and_the_best_value():
    frame = pd.DataFrame({"number": [0, 1, 2, 3], "accuracy": [0.95, 0.90, 0.85, 0.99],
                          "energy_mj": [2.0, 1.0, 1.5, 0.5], "f_aeb": [0.93, 0.9, 0.84, 0.97],
                          "feasible": [True, True, True, False]})
    assert search_summary(frame, "pareto") == "front 2, best accuracy 95.00%"
    assert search_summary(frame, "aeb") == "front 2, best F_AEB 0.9300"
    assert search_summary(frame.iloc[3:], "pareto") == ""


# ----------------------------------------------------------------------------- --verbose, --quiet, --version


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"autospk-study {version('autospk')}\n"


def test_verbose_and_quiet_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--verbose", "list", "--quiet"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith("autospk-study: error: give --verbose or --quiet, not both\n")


def test_verbose_adds_the_traceback_to_the_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/none.db"
    assert main(["show", "--storage", url, "--study-name", "s", "--verbose"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n") and "StorageError" in err
    assert err.endswith(f"autospk-study: error: storage {url} does not exist: no file {tmp_path}/none.db "
                        f"(no sqlite storage in {tmp_path}); {CREATE_HINT}\n")


# ----------------------------------------------------------------------------- frictions a new user met


def test_a_missing_checkpoint_names_the_checkpoints_there_and_the_quickstarts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path}/s.db"
    create = ["create", "--storage", storage, "--study-name", "d3", "--objective", "pareto3"]
    assert fails(capsys, *create, "--checkpoint", "digits.pt") == (
        "autospk-study: error: supernet checkpoint digits.pt does not exist; train one with "
        "`autospk-study train-supernet`\n")
    (tmp_path / "autospk-runs").mkdir()
    (tmp_path / "autospk-runs" / "digits-supernet.pt").write_bytes(b"")
    (tmp_path / "c10.pt").write_bytes(b"")
    assert fails(capsys, *create, "--checkpoint", "digits.pt") == (
        "autospk-study: error: supernet checkpoint digits.pt does not exist; checkpoints here: "
        "autospk-runs/digits-supernet.pt (the quickstart's), c10.pt; or train one with "
        "`autospk-study train-supernet`\n")


def test_a_batch_larger_than_a_small_folder_names_the_flag(tmp_path, capsys):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(20):
            Image.new("L", (8, 8), color=i * 10).save(tmp_path / "imgs" / label / f"{i}.png")
    assert main(["train-supernet", "--dataset", "folder", "--data-root", str(tmp_path / "imgs"), "--space",
                 "digits", "--output", str(tmp_path / "m.pt"), "--epochs", "1", "--device", "cpu",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    # (torch may warn first that the cifar recipe's 4 loader workers exceed this machine's CPUs)
    err = "autospk-study: error: " + err.split("autospk-study: error: ", 1)[1]
    assert re.fullmatch(r"autospk-study: error: batch_size=128 is larger than the training split \((\d+) images\): "
                        r"choose a batch size of at most \1 \(--batch-size on the command line\) or train on more "
                        r"images\n", err), err
    assert not (tmp_path / "m.pt").exists()


def test_optimize_into_a_log_file_prints_while_trials_finish_not_only_per_generation(
        tmp_path, digits_checkpoint, capsys, monkeypatch):
    import studies.progress
    from studies.progress import SearchProgress

    storage = f"sqlite:///{tmp_path}/slow.db"
    assert main(["create", "--storage", storage, "--study-name", "s", "--objective", "pareto", "--checkpoint",
                 str(digits_checkpoint.path), "--population-size", "20"]) == 0
    study, settings = load(storage, "s")
    capsys.readouterr()
    # Trials finishing quickly: a line per generation of 20 only (none here), then the end.
    quick = SearchProgress(study, settings, finished=0, n_trials=3, show=True)
    for finished in (1, 2):
        quick.update(finished)
    quick.close(3)
    assert capsys.readouterr().out == "s: 3/3 trials\n"
    # Trials slower than LINE_SECONDS apart: a line as each finishes, though no generation is complete.
    monkeypatch.setattr(studies.progress, "LINE_SECONDS", 0.0)
    slow = SearchProgress(study, settings, finished=0, n_trials=3, show=True)
    for finished in (1, 2, 3):
        slow.update(finished)
    slow.close(3)
    assert capsys.readouterr().out == "s: 1/3 trials\ns: 2/3 trials\ns: 3/3 trials\n"


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    storage = f"sqlite:///{tmp_path}/p.db"
    optuna.create_study(storage=storage, study_name="s")
    proc = subprocess.Popen([*CLI, "list", "--storage", storage], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    proc.stdout.close()  # as `autospk-study list | head -0` would
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""
