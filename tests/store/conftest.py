"""Every store test runs against both back ends: SQLite and PostgreSQL.

`db_url` (one test) and `module_db_url` (a module's shared store) give a fresh, empty
database: a new SQLite file, or a new database (CREATE DATABASE, dropped afterwards) on the
PostgreSQL server that $MLPACE_TEST_POSTGRES names. `.ci/run` starts a throw-away server and
sets it; a developer gets the same with

    eval "$(.ci/postgres start)"     # and `.ci/postgres stop` when done

Without a server the PostgreSQL tests skip, saying so - except under CI=true, where they fail:
CI must never pass without having tested PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BACKENDS = ["sqlite", "postgresql"]
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a PostgreSQL server to make test databases on (its `postgres` database)."""
    url = os.environ.get("MLPACE_TEST_POSTGRES")
    if not url:
        why = 'no PostgreSQL server to test: set MLPACE_TEST_POSTGRES (eval "$(.ci/postgres start)")'
        if _in_ci():
            pytest.fail(f"{why}; under CI=true the PostgreSQL store must be tested")
        pytest.skip(why)
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as err:   # any reason at all (no driver, no server): not usable
        pytest.fail(f"MLPACE_TEST_POSTGRES={url} is not usable: {str(err).splitlines()[0]}")
    return url


@contextmanager
def postgres_database(server_url: str):
    """A new, empty database on the server; dropped (connections and all) afterwards."""
    name = f"mlpace_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(request, backend: str, folder: Path):
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'results.sqlite'}"
        return
    with postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def new_postgres_database(postgres_server):
    """`with new_postgres_database() as url:` another fresh PostgreSQL database."""
    return lambda: postgres_database(postgres_server)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A fresh, empty results store for one test, on each back end."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory) -> str:
    """A fresh results store shared by one module's tests, on each back end."""
    with fresh_database(request, request.param, tmp_path_factory.mktemp("store")) as url:
        yield url
