"""The store's guarantees where the database itself misbehaves: a killed importer, a wrong or
lost connection, a mistyped location - and SQLite and PostgreSQL agreeing to the digit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from mlpace import cli
from mlpace.errors import MlpaceError
from mlpace.results import importers, schema
from mlpace.results.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"


def counts(url: str) -> dict[str, int]:
    with open_store(url).read() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (schema.rounds, schema.submitters, schema.systems,
                              schema.training_results, schema.training_runs,
                              schema.inference_results)}


def mlpace(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["mlpace.commands.store"])
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# An importer that stops, forever, right after writing its first result (inside the open
# transaction), and says so in a file: the test kills it there with SIGKILL.
HANG_AFTER_FIRST_RESULT = """
import sys, time
from pathlib import Path
from mlpace.results import importers
from mlpace.results.store import open_store

real = importers._write_training

def write_then_hang(conn, system_id, result, source):
    runs = real(conn, system_id, result, source)
    Path(sys.argv[3]).write_text("written")
    time.sleep(600)
    return runs

importers._write_training = write_then_hang
importers.import_trees(open_store(sys.argv[1]), [sys.argv[2]])
"""


def test_an_importer_killed_mid_write_leaves_nothing_partial(db_url, tmp_path):
    open_store(db_url)
    signal_file = tmp_path / "written"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HANG_AFTER_FIRST_RESULT, db_url,
                             str(TRAINING / "Google"), str(signal_file)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            assert proc.poll() is None, "the importer ended before writing anything"
            assert time.monotonic() < deadline, "the importer never wrote its first result"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert counts(db_url) == dict.fromkeys(counts(db_url), 0)     # not even the round
    report = importers.import_trees(open_store(db_url), [TRAINING / "Google"])
    assert (report.added, report.failures) == (5, [])


def test_sqlite_and_postgresql_give_identical_results_output(new_postgres_database, tmp_path,
                                                             monkeypatch, capsys):
    sqlite = f"sqlite:///{tmp_path / 'r.sqlite'}"
    with new_postgres_database() as postgres:
        outputs = {}
        for url in (sqlite, postgres):
            shipped = [TRAINING, FIXTURES / "training_v3.1", INFERENCE]    # every shipped fixture
            assert importers.import_trees(open_store(url), shipped).failures == []
            outputs[url] = [mlpace(monkeypatch, capsys, "results", "--db", url, "--format", "json",
                                   "--all", "--kind", kind) for kind in ("training", "inference")]
    assert outputs[sqlite] == outputs[postgres]
    (code, out, _), _ = outputs[sqlite]
    assert code == 0 and '"minutes": 28.7' in out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_password_role(server_url: str) -> None:
    """The role `.ci/postgres` makes give its password (scram); everyone else is trusted."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'mlpace_password'")).first():
            conn.execute(text("CREATE ROLE mlpace_password LOGIN PASSWORD 'right-one'"))
    engine.dispose()


def bad_urls(server_url: str) -> dict[str, str]:
    url = make_url(server_url)
    return {
        "wrong port": url.set(port=free_port()),
        "wrong host": url.set(host="127.0.0.2"),
        "wrong password": url.set(username="mlpace_password", password="wrong-one"),
        "missing database": url.set(database="mlpace_no_such_database"),
    }


@pytest.mark.parametrize("case", ["wrong port", "wrong host", "wrong password", "missing database"])
def test_bad_connection_input_is_one_clear_line(case, postgres_server, monkeypatch, capsys):
    make_password_role(postgres_server)
    url = bad_urls(postgres_server)[case].render_as_string(hide_password=False)
    for argv in (["import", str(TRAINING / "Intel")], ["results"], ["report", "--out", "site"]):
        code, out, err = mlpace(monkeypatch, capsys, *argv, "--db", url)
        lines = err.strip().splitlines()
        assert code == 2 and out == "" and len(lines) == 1, err
        assert lines[0].startswith("error: results store postgresql+psycopg://")
        assert "wrong-one" not in err                        # the password is never shown
    expected = {"wrong port": "refused", "wrong host": "refused",
                "wrong password": "password authentication failed",
                "missing database": 'database "mlpace_no_such_database" does not exist'}[case]
    assert expected in lines[0]


def test_a_connection_lost_mid_import_stops_with_one_line_and_nothing_half_written(
        postgres_server, new_postgres_database, tmp_path, monkeypatch, capsys):
    tree = tmp_path / "tree"
    for org in ("Google", "Intel"):
        shutil.copytree(TRAINING / org, tree / org)
    real = importers._write_training
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")

    def write_then_lose_connection(conn, system_id, result, source):
        runs = real(conn, system_id, result, source)
        if result.benchmark == "resnet" and result.system == "tpu-v4-128-TF":
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as other:           # the server drops this importer's session
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return runs

    with new_postgres_database() as url:
        monkeypatch.setattr(importers, "_write_training", write_then_lose_connection)
        code, out, err = mlpace(monkeypatch, capsys, "import", str(tree), "--db", url)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"error: results store {url}: ") and "connection" in err
        with open_store(url).read() as conn:
            stored = set(conn.execute(select(schema.submitters.c.name)).scalars())
            results = conn.execute(select(func.count()).select_from(schema.training_results)).scalar()
        # Google (one transaction) is wholly absent; whatever went in before it is complete.
        assert "Google" not in stored and results == (1 if stored == {"Intel"} else 0)
        monkeypatch.setattr(importers, "_write_training", real)
        report = importers.import_trees(open_store(url), [tree])
        assert report.failures == [] and report.added == 5 + 1 - results
    admin.dispose()


CI_POSTGRES = Path(__file__).resolve().parents[2] / ".ci" / "postgres"


@pytest.fixture
def private_postgres(postgres_server) -> dict:
    """A server of this test's own (`.ci/postgres start`), which it may stop and start again;
    the environment that names it."""
    start = subprocess.run([str(CI_POSTGRES), "start"], capture_output=True, text=True, timeout=120)
    if start.returncode != 0:
        pytest.fail(f"cannot start a private PostgreSQL server: {start.stderr.strip()}")
    env = {**os.environ, **dict(line.removeprefix("export ").split("=", 1)
                                for line in start.stdout.splitlines())}
    yield env
    subprocess.run([str(CI_POSTGRES), "stop"], env=env, timeout=120)


def test_a_server_stopped_mid_import_gives_one_line_and_leaves_nothing_half_written(
        private_postgres, tmp_path, monkeypatch, capsys):
    url = private_postgres["MLPACE_TEST_POSTGRES"]
    tree = tmp_path / "tree"
    for org in ("Google", "Intel"):
        shutil.copytree(TRAINING / org, tree / org)
    real = importers._write_training

    def write_then_stop_the_server(conn, system_id, result, source):
        runs = real(conn, system_id, result, source)
        if result.benchmark == "resnet" and result.system == "tpu-v4-128-TF":
            subprocess.run([str(CI_POSTGRES), "down"], env=private_postgres, check=True, timeout=120)
        return runs

    monkeypatch.setattr(importers, "_write_training", write_then_stop_the_server)
    code, out, err = mlpace(monkeypatch, capsys, "import", str(tree), "--db", url)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: results store {url}: ")
    subprocess.run([str(CI_POSTGRES), "up"], env=private_postgres, check=True, timeout=120)
    with open_store(url).read() as conn:
        stored = set(conn.execute(select(schema.submitters.c.name)).scalars())
        results = conn.execute(select(func.count()).select_from(schema.training_results)).scalar()
    # Google's transaction died with the server; whatever was committed before it is whole.
    assert "Google" not in stored and results == (1 if stored == {"Intel"} else 0)
    monkeypatch.setattr(importers, "_write_training", real)
    report = importers.import_trees(open_store(url), [tree])
    assert report.failures == [] and report.added == 5 + 1 - results


# ---------------------------------------------------------------- where a SQLite store may be

def test_an_explicit_sqlite_file_in_a_missing_folder_is_refused_not_created(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no_such_folder"
    for db in (f"sqlite:///{missing}/x.db", str(missing / "x.db"), "sqlite:////nonexistent_dir_mlpace/x.db"):
        code, _, err = mlpace(monkeypatch, capsys, "results", "--db", db)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err, err
    monkeypatch.setenv("MLPACE_DB", str(missing / "x.db"))           # the variable is explicit too
    with pytest.raises(MlpaceError, match="does not exist"):
        open_store()
    assert not missing.exists() and not Path("/nonexistent_dir_mlpace").exists()


@pytest.mark.parametrize("db", ["sqlite:/relative", "::::", "sqlite:relative.db", " "])
def test_a_mistyped_url_is_refused_and_creates_nothing(db, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = mlpace(monkeypatch, capsys, "results", "--db", db)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {db!r} is neither a database URL (sqlite:///file.db, postgresql+psycopg://user@host/db) "
        "nor a file path"]
    assert list(tmp_path.iterdir()) == []


def test_the_default_store_makes_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLPACE_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = open_store()
    assert store.url == f"sqlite:///{tmp_path / 'data' / 'mlpace' / 'results.sqlite'}"
    assert (tmp_path / "data" / "mlpace" / "results.sqlite").is_file()


def test_a_name_too_long_for_its_column_fails_its_submission_alike_on_both_back_ends(db_url, tmp_path):
    # PostgreSQL refuses a text longer than its column; SQLite would keep it. Both must refuse.
    long_benchmark = "b" * 40
    shutil.copytree(TRAINING / "Intel", tmp_path / "tree" / "Intel")
    org = shutil.copytree(TRAINING / "Google", tmp_path / "tree" / "Google")
    (org / "results/tpu-v4-128-TF/ssd").rename(org / "results/tpu-v4-128-TF" / long_benchmark)
    report = importers.import_trees(open_store(db_url), [tmp_path / "tree"])
    assert report.submissions == 1 and len(report.failures) == 1
    assert "training_results.benchmark 'bbbbbbbb" in report.failures[0]
    assert "has 40 characters; the store keeps at most 32" in report.failures[0]
    assert counts(db_url)["training_results"] == 1                  # Intel only: Google rolled back


def test_a_read_only_role_reads_the_store_and_cannot_write_it(new_postgres_database, tmp_path,
                                                              monkeypatch, capsys):
    # docs/results.md: readers need only SELECT (and CONNECT, USAGE) once the tables exist.
    with new_postgres_database() as url:
        importers.import_trees(open_store(url), [TRAINING / "Google"])
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'mlpace_reader'")).first():
                conn.execute(text("CREATE ROLE mlpace_reader LOGIN"))
            database = make_url(url).database
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO mlpace_reader'))
            conn.execute(text("GRANT USAGE ON SCHEMA public TO mlpace_reader"))
            conn.execute(text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO mlpace_reader"))
        admin.dispose()
        reader = make_url(url).set(username="mlpace_reader", drivername="postgresql")
        reader = reader.render_as_string(hide_password=False)        # plain postgresql:// works too
        code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", reader, "--format", "json")
        assert code == 0 and len(json.loads(out)) == 5
        code, _, _ = mlpace(monkeypatch, capsys, "report", "--out", str(tmp_path / "site"), "--db", reader)
        assert code == 0 and (tmp_path / "site" / "index.html").is_file()
        code, out, err = mlpace(monkeypatch, capsys, "import", str(TRAINING / "Intel"), "--db", reader)
        assert code == 2 and "permission denied" in err and len(err.strip().splitlines()) == 1, err


def test_a_url_with_a_bad_port_is_one_line_and_an_in_memory_store_opens(monkeypatch, capsys):
    code, _, err = mlpace(monkeypatch, capsys, "results", "--db", "postgresql+psycopg://u@h:notaport/db")
    assert code == 2 and err.strip().splitlines() == [
        "error: cannot open results store postgresql+psycopg://u@h:notaport/db: invalid literal "
        "for int() with base 10: 'notaport'"]
    code, _, err = mlpace(monkeypatch, capsys, "results", "--db", "sqlite://")
    assert code == 0 and "no results match" in err
