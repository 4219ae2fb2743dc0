"""What the command line says: storages it must not create, totals already reached, settings
that differ from a study's, Ctrl-C, failed workers, progress in a log file, --verbose/--quiet
and --version. Each case checks its exact message."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3

import optuna
import pytest

from nas import load_checkpoint, save_checkpoint
from studies.cli import main
from studies.storage import open_storage
from studies.study import load
from tests.test_cli import _fails
from tests.test_data import DIGITS_FINGERPRINT

CREATE_HINT = "check the URL, or create a study there with `autospk-study create`"


# ----------------------------------------------------------------------------- storages are never made by reading

READING = [["list"], ["show", "--study-name", "s"], ["plot", "--study-name", "s"], ["export", "--study-name", "s"],
           ["delete", "--study-name", "s", "--yes"], ["optimize", "--study-name", "s", "--n-trials", "1"]]


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_a_mistyped_sqlite_url_is_an_error_naming_the_file_and_the_storages_beside_it(tmp_path, capsys, command):
    open_storage(f"sqlite:///{tmp_path}/autospk.db")  # the storage the user meant
    err = _fails(capsys, *command, "--storage", f"sqlite:///{tmp_path}/autospk.dbb")
    assert err == (f"autospk-study: error: storage sqlite:///{tmp_path}/autospk.dbb does not exist: no file "
                   f"{tmp_path}/autospk.dbb (sqlite storages in {tmp_path}: autospk.db); {CREATE_HINT}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autospk.db"]


def test_list_in_an_empty_folder_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSPK_STORAGE", raising=False)
    err = _fails(capsys, "list")
    assert err == (f"autospk-study: error: storage sqlite:///{tmp_path}/autospk.db does not exist: no file "
                   f"{tmp_path}/autospk.db (no sqlite storage in {tmp_path}); {CREATE_HINT}\n")
    assert not list(tmp_path.iterdir())


def test_a_missing_journal_file_is_not_created(tmp_path, capsys):
    open_storage(f"journal://{tmp_path}/study.log")
    err = _fails(capsys, "show", "--storage", f"journal://{tmp_path}/studies.log", "--study-name", "s")
    assert err == (f"autospk-study: error: storage journal://{tmp_path}/studies.log does not exist: no file "
                   f"{tmp_path}/studies.log (journal storages in {tmp_path}: study.log); {CREATE_HINT}\n")
    err = _fails(capsys, "list", "--storage", f"journal://{tmp_path}/gone/study.log")
    assert f"(folder {tmp_path}/gone does not exist)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.log"]


def test_a_database_without_optuna_tables_gets_none_on_reading(tmp_path, capsys):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    err = _fails(capsys, "list", "--storage", f"sqlite:///{path}")
    assert err == (f"autospk-study: error: storage sqlite:///{path} holds no studies: the database has no Optuna "
                   f"tables; {CREATE_HINT}\n")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("notes",)]


def test_a_storage_without_that_study_names_the_studies_it_holds(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="digits-aeb", storage=open_storage(url))
    err = _fails(capsys, "show", "--storage", url, "--study-name", "digits-aeb2")
    assert err == f"autospk-study: error: no study 'digits-aeb2' in {url}; studies there: ['digits-aeb']\n"


# ----------------------------------------------------------------------------- create --skip-if-exists


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
    err = _fails(capsys, *args, "--skip-if-exists", "--population-size", "6", "--alpha", "-0.1")
    assert err == ("autospk-study: error: study 's' exists with other settings: aeb.alpha=-0.07, not -0.1; "
                   f"sampler.population_size=4, not 6; {fix}\n")

    save_checkpoint(checkpoint, dataclasses.replace(load_checkpoint(checkpoint), data_fingerprint="retrained"))
    mismatch = (f"checkpoint {checkpoint} is not the supernet the study was created with: it was trained on digits, "
                f"split seed 0 with data fingerprint retrained, the study's on digits, split seed 0 with data "
                f"fingerprint {DIGITS_FINGERPRINT}; put the study's checkpoint back, or create a new study on this "
                "one")
    err = _fails(capsys, *args, "--skip-if-exists")
    assert err == f"autospk-study: error: study 's' exists, but its {mismatch}\n"
