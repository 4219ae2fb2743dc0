"""The storage layer under faults: leaked connections, torn journals, failed writes, printed passwords.

Database tests use the PostgreSQL and MariaDB servers of the machine (skipped when they do
not answer); the CLI runs in subprocesses where a fault needs a process of its own.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import optuna
import pytest
import sqlalchemy
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.fitness import AEBSettings
from nas.settings import SamplerSettings
from studies.cli import main
from studies.recovery import HeartbeatRetry
from studies.storage import mask_url, open_storage
from studies.study import create, load
from tests.conftest import server_answers

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql+pymysql://root@127.0.0.1:3306/test"
CLI = [sys.executable, "-m", "studies.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def run(*args: str, env: dict[str, str] = ENV, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env, **kwargs)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, f"{proc.args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autospk-study: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def postgres() -> str:
    if not server_answers(POSTGRES):
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES}")
    return POSTGRES


def _with_password(url: str, password: str) -> str:
    return url.replace("postgres@", f"postgres:{password}@", 1)


def _create_args(storage: str, name: str, checkpoint) -> list[str]:
    # A given E_ref skips measuring the largest subnet: these tests are about the storage.
    return ["create", "--storage", storage, "--study-name", name, "--objective", "aeb", "--checkpoint",
            str(checkpoint), "--e-ref", "1.0", "--population-size", "4", "--num-parents", "2"]


def _admin(url: str, *statements: str, **params) -> list:
    """Run statements on a connection of their own; the rows of the last."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                result = conn.execute(sqlalchemy.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


@dataclass(frozen=True)
class TaggedDatabase:
    """A URL to a real database server whose connections the server can single out.

    Attributes:
        url: The URL this test opens.
        admin: A URL of the same server for the test's own queries.
        listed: SQL listing the server-side ids of the connections of `url`.
        own_id: SQL of the server-side id of the connection it runs on.
    """

    url: str
    admin: str
    listed: str
    own_id: str

    def backends(self) -> set[int]:
        return {row[0] for row in _admin(self.admin, self.listed)}

    def backend_of(self, store) -> int:
        with store.engine.connect() as conn:
            return conn.execute(sqlalchemy.text(self.own_id)).scalar_one()


@pytest.fixture(params=["postgresql", "mysql"])
def tagged(request) -> Iterator[TaggedDatabase]:
    tag = f"autospk_test_{uuid.uuid4().hex[:8]}"
    if request.param == "postgresql":
        if not server_answers(POSTGRES):
            pytest.skip(f"no PostgreSQL server answers at {POSTGRES}")
        yield TaggedDatabase(f"{POSTGRES}?application_name={tag}", POSTGRES,
                             f"SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}'",
                             "SELECT pg_backend_pid()")
        return
    if not server_answers(MYSQL):
        pytest.skip(f"no MariaDB/MySQL server answers at {MYSQL}")
    # MariaDB has no application name: a user of its own tags the connections.
    _admin(MYSQL, f"CREATE USER {tag}@'%'", f"GRANT ALL PRIVILEGES ON test.* TO {tag}@'%'")
    try:
        yield TaggedDatabase(MYSQL.replace("root@", f"{tag}@", 1), MYSQL,
                             f"SELECT id FROM information_schema.processlist WHERE user = '{tag}'",
                             "SELECT connection_id()")
    finally:
        _admin(MYSQL, f"DROP USER {tag}@'%'")


# ----------------------------------------------------------------------------- 1: one storage per process


def test_repeated_opens_and_loads_share_one_pool_of_connections(tagged, digits_checkpoint):
    name = f"pool-{uuid.uuid4().hex[:8]}"
    create(tagged.url, name, objective="aeb", checkpoint=digits_checkpoint.path, aeb=AEBSettings(e_ref=1.0),
           sampler=SamplerSettings(population_size=4, num_parents=2), enqueue_largest=False)
    try:
        # Held, as a worker holds its study and a progress poll its storage.
        held = [open_storage(tagged.url) for _ in range(3)]
        held += [load(tagged.url, name) for _ in range(3)]
        held += [load(tagged.url, name, heartbeat=True) for _ in range(3)]
        for study, _ in held[3:]:
            study.get_trials(deepcopy=False)
        assert len(tagged.backends()) <= held[0].engine.pool.size()
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(tagged.url))


def test_heartbeat_settings_live_on_their_own_storage_object_over_one_connection_pool(tmp_path):
    url = f"sqlite:///{tmp_path}/beat.db"
    plain = open_storage(url)
    assert not is_heartbeat_enabled(plain)
    beating = open_storage(url, heartbeat_interval=7)
    assert beating is not plain and beating.engine is plain.engine
    assert is_heartbeat_enabled(beating) and beating.heartbeat_interval == 7 and beating.grace_period == 21
    assert isinstance(beating.get_heartbeat_stale_trial_callback(), HeartbeatRetry)
    assert open_storage(url, heartbeat_interval=7) is beating
    assert open_storage(url) is plain and not is_heartbeat_enabled(plain)


def test_a_replaced_sqlite_file_gets_a_new_storage(tmp_path):
    url = f"sqlite:///{tmp_path}/replaced.db"
    first = open_storage(url)
    optuna.create_study(storage=first, study_name="old")
    (tmp_path / "replaced.db").unlink()
    second = open_storage(url)
    assert second is not first
    assert optuna.get_all_study_summaries(second) == []


def _child_opens_its_own(url: str, parent_id: int) -> None:
    store = open_storage(url)
    optuna.get_all_study_summaries(store)
    sys.exit(0 if id(store) != parent_id and open_storage(url) is store else 3)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_process_builds_its_own_storage_and_leaves_the_parents_alone(tagged, method):
    store = open_storage(tagged.url)
    parents = tagged.backends()
    assert parents
    child = multiprocessing.get_context(method).Process(target=_child_opens_its_own, args=(tagged.url, id(store)))
    child.start()
    child.join(60)
    assert child.exitcode == 0, f"the {method}ed child reused or could not open a storage ({child.exitcode})"
    assert open_storage(tagged.url) is store
    for _ in parents:  # each pooled connection in turn; one the child closed would be replaced
        assert tagged.backend_of(store) in parents, "the child closed the parent's connection"


# ----------------------------------------------------------------------------- 6: torn journals


def _raw_journal(path) -> JournalStorage:
    """Optuna's own journal storage of `path`, as any other program would open it."""
    return JournalStorage(JournalFileBackend(str(path)))


@pytest.mark.slow
def test_a_cut_last_journal_line_is_dropped_and_every_study_goes_on(tmp_path, digits_checkpoint):
    path = tmp_path / "study.log"
    storage = f"journal://{path}"
    _ok(run(*_create_args(storage, "first", digits_checkpoint.path)))
    # The last write of a process that met a full disk: an entry cut short, without its newline.
    optuna.load_study(study_name="first", storage=_raw_journal(path)).set_user_attr("cut", "x" * 50)
    whole = path.read_bytes()
    path.write_bytes(whole[:-40])

    env = {k: v for k, v in ENV.items() if k != "PYTHONWARNINGS"}  # the repair is reported as a warning
    created = _ok(run(*_create_args(storage, "second", digits_checkpoint.path), env=env))
    assert f"autospk-study: warning: journal {path}: dropped its last" in created.stderr
    _ok(run("optimize", "--storage", storage, "--study-name", "first", "--n-trials", "2", "--no-progress"))
    listed = _ok(run("list", "--storage", storage)).stdout
    assert "first" in listed and "second" in listed

    lines = path.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") and json.loads(line) for line in lines)
    first = optuna.load_study(study_name="first", storage=_raw_journal(path))
    assert len(first.get_trials(states=(TrialState.COMPLETE,))) >= 2
    assert first.user_attrs["objective"] == "aeb" and "cut" not in first.user_attrs


def test_a_glued_journal_line_is_refused_naming_the_file_line_and_fix(tmp_path):
    path = tmp_path / "glued.log"
    study = optuna.create_study(storage=_raw_journal(path), study_name="glued")
    for key in "abc":
        study.set_user_attr(key, key * 30)
    lines = path.read_bytes().splitlines(keepends=True)
    # What Optuna's backend leaves after a full disk: a cut entry, the next entry appended to it.
    lines[1:3] = [lines[1][:25] + lines[2]]
    path.write_bytes(b"".join(lines))

    error = _one_line_error(run("list", "--storage", f"journal://{path}"))
    assert f"journal {path}, line 2" in error
    assert "op_code" in error and "backup" in error


# ----------------------------------------------------------------------------- 8: failed writes


@pytest.mark.slow
def test_a_write_to_a_read_only_sqlite_file_is_one_line_with_its_cause(tmp_path, digits_checkpoint):
    path = tmp_path / "ro.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="existing")
    # Root writes through any file mode; SQLite's own read-only mode refuses even root.
    storage = f"sqlite:///file:{path}?mode=ro&uri=true"
    error = _one_line_error(run(*_create_args(storage, "new", digits_checkpoint.path)))
    assert f"storage {storage} failed: attempt to write a readonly database" in error

    verbose = run("--verbose", *_create_args(storage, "new", digits_checkpoint.path))
    assert verbose.returncode == 2
    assert verbose.stderr.startswith("Traceback") and "attempt to write a readonly database" in verbose.stderr
    assert run(*_create_args(storage, "new", digits_checkpoint.path), "--verbose").stderr == verbose.stderr
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{path}")] == ["existing"]
    assert not (tmp_path / "ro.db.artifacts").exists(), "a failed create leaves no artifact folder"


def _file_size_limit(size: int):
    def limit() -> None:
        # A full disk, for this process only: writes beyond `size` bytes fail (EFBIG), part-written.
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return limit


@pytest.mark.slow
def test_a_journal_on_a_full_disk_is_one_line_and_the_next_command_goes_on(tmp_path, digits_checkpoint):
    path = tmp_path / "full.log"
    storage = f"journal://{path}"
    optuna.create_study(storage=_raw_journal(path), study_name="existing")
    size = path.stat().st_size

    error = _one_line_error(run(*_create_args(storage, "new", digits_checkpoint.path),
                                preexec_fn=_file_size_limit(size + 40)))
    assert f"cannot write journal {path}" in error and "File too large" in error
    assert path.stat().st_size == size + 40 and not path.read_bytes().endswith(b"\n")

    _ok(run(*_create_args(storage, "new", digits_checkpoint.path)))
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(_raw_journal(path))) == ["existing", "new"]


@pytest.fixture
def role(postgres) -> Iterator[str]:
    """A PostgreSQL role that may log in and do nothing else (tests grant it more)."""
    name = f"autospk_role_{uuid.uuid4().hex[:8]}"
    open_storage(postgres)  # creates the Optuna tables on a server that has none yet
    _admin(postgres, f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        _admin(postgres, f"DROP OWNED BY {name}", f"DROP ROLE {name}")


@pytest.mark.slow
def test_a_refused_database_write_is_one_line_with_its_cause(postgres, role, digits_checkpoint):
    _admin(postgres, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    storage = postgres.replace("postgres@", f"{role}:pw@", 1)
    error = _one_line_error(run(*_create_args(storage, f"denied-{uuid.uuid4().hex[:8]}", digits_checkpoint.path)))
    assert f"storage postgresql://{role}:***@127.0.0.1:5432/test failed: " in error
    assert "permission denied for table studies" in error


def test_a_refused_database_read_on_open_names_its_cause(postgres, role):
    # Optuna's own message for this ("An exception is raised during the commit...") hides it.
    error = _one_line_error(run("list", "--storage", postgres.replace("postgres@", f"{role}@", 1)))
    assert f"cannot open storage postgresql://{role}@127.0.0.1:5432/test: permission denied for table" in error


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
