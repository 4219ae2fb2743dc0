"""What the command line says: storages it must not create, totals already reached, settings
that differ from a study's, Ctrl-C, failed workers, progress in a log file, --verbose/--quiet
and --version. Each case checks its exact message."""

from __future__ import annotations

import sqlite3

import optuna
import pytest

from studies.storage import open_storage
from tests.test_cli import _fails

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
