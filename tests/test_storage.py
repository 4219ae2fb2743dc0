"""The storage layer under faults: leaked connections, torn journals, failed writes, printed passwords.

Database tests use the PostgreSQL and MariaDB servers of the machine (skipped when they do
not answer); the CLI runs in subprocesses where a fault needs a process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest

from studies.cli import main
from studies.storage import mask_url, open_storage

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CLI = [sys.executable, "-m", "studies.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _answers(url: str) -> bool:
    try:
        open_storage(url)
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def postgres() -> str:
    if not _answers(POSTGRES):
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES}")
    return POSTGRES


def _with_password(url: str, password: str) -> str:
    return url.replace("postgres@", f"postgres:{password}@", 1)


def _create_args(storage: str, name: str, checkpoint) -> list[str]:
    # A given E_ref skips measuring the largest subnet: these tests are about the storage.
    return ["create", "--storage", storage, "--study-name", name, "--objective", "aeb", "--checkpoint",
            str(checkpoint), "--e-ref", "1.0", "--population-size", "4", "--num-parents", "2"]


# ----------------------------------------------------------------------------- 9: passwords


def test_password_of_an_unreachable_database_is_not_printed(capsys):
    url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/test"
    assert main(["list", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open storage postgresql://postgres:***@127.0.0.1:1/test" in err
    assert "s3cret-pw" not in err


def test_password_is_masked_in_success_and_error_lines(postgres, digits_checkpoint, capsys):
    url = _with_password(postgres, "dummy-pw")  # trust authentication accepts any password
    name = f"mask-{uuid.uuid4().hex[:8]}"
    try:
        assert main(_create_args(url, name, digits_checkpoint.path)) == 0
        assert main(["list", "--storage", url]) == 0
        assert main(_create_args(url, name, digits_checkpoint.path)) == 2
        assert main(["show", "--storage", url, "--study-name", f"{name}-missing"]) == 2
        out, err = capsys.readouterr()
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(postgres))
    assert f"study '{name}' (aeb) in postgresql://postgres:***@127.0.0.1:5432/test" in out
    assert name in out
    assert "already exists in postgresql://postgres:***@" in err and "no study" in err
    assert "dummy-pw" not in out + err


def test_mask_url_hides_only_database_passwords():
    assert mask_url("postgresql://u:p%40ss@db/s?sslmode=require") == "postgresql://u:***@db/s?sslmode=require"
    assert mask_url("mysql+pymysql://root@127.0.0.1:3306/test") == "mysql+pymysql://root@127.0.0.1:3306/test"
    assert mask_url("sqlite:////tmp/a:b@c.db") == "sqlite:////tmp/a:b@c.db"
    assert mask_url("journal:///tmp/study.log") == "journal:///tmp/study.log"
    assert mask_url("no such://u:secret@host/db") == "no such://u:***@host/db"
