"""Open the results store: SQLite in the user's data directory by default, any SQLAlchemy URL.

Writers are made safe for several processes at once: on SQLite every write transaction
starts with `BEGIN IMMEDIATE` (it takes the write lock up front, so two importers queue
instead of failing half-way) and waits up to `BUSY_TIMEOUT_S` for the lock; on a server
database the unique constraints turn a race into an IntegrityError, and `write()` retries
the whole transaction.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from mlpace.errors import MlpaceError
from mlpace.results.migrations import migrate

BUSY_TIMEOUT_S = 120
WRITE_ATTEMPTS = 5
ENV_VAR = "MLPACE_DB"


def default_url() -> str:
    """$MLPACE_DB, else a SQLite file in the user's data directory."""
    if os.environ.get(ENV_VAR):
        return _as_url(os.environ[ENV_VAR])
    import platformdirs
    return f"sqlite:///{Path(platformdirs.user_data_dir('mlpace')) / 'results.sqlite'}"


def _as_url(db: str | os.PathLike | None) -> str:
    """A SQLAlchemy URL; a plain path is taken as a SQLite file."""
    if db is None:
        return default_url()
    db = str(db)
    return db if "://" in db else f"sqlite:///{Path(db).expanduser().resolve()}"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None     # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # Writers take the lock at BEGIN; readers start a plain (deferred) transaction.
        write = connection.get_execution_options().get("mlpace_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    """A connection pool to one results database, migrated to the newest schema."""

    def __init__(self, db: str | os.PathLike | None = None):
        self.url = _as_url(db)
        try:
            if self.url.startswith("sqlite:///"):
                path = Path(self.url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url)
        except (ArgumentError, ImportError, OSError) as err:
            raise MlpaceError(f"cannot open results store {self.url}: {err}") from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine)
        self.write(migrate)

    def write(self, work, *args, **kwargs):
        """Run work(connection, ...) in one transaction; all of it is stored or none of it.

        A transaction that lost a race with another writer (lock timeout, or a unique key
        inserted by the other one first) is rolled back and run again from the start.
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.engine.connect() as connection:
                    connection = connection.execution_options(mlpace_write=True)
                    with connection.begin():
                        return work(connection, *args, **kwargs)
            except (IntegrityError, OperationalError) as err:
                if attempt == WRITE_ATTEMPTS - 1 or not _is_race(err):
                    raise MlpaceError(f"results store {self.url}: {_short(err)}") from None
                time.sleep(0.05 * (attempt + 1))
            except DBAPIError as err:
                raise MlpaceError(f"results store {self.url}: {_short(err)}") from None

    @contextmanager
    def read(self):
        """A connection for queries; a database error becomes one clear MlpaceError."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except DBAPIError as err:
            raise MlpaceError(f"results store {self.url}: {_short(err)}") from None

    def close(self) -> None:
        self.engine.dispose()


def _is_race(err: Exception) -> bool:
    text = str(getattr(err, "orig", err)).lower()
    return isinstance(err, IntegrityError) or "locked" in text or "busy" in text \
        or "deadlock" in text or "could not serialize" in text


def _short(err: Exception) -> str:
    return str(getattr(err, "orig", err)).splitlines()[0]


def open_store(db: str | os.PathLike | None = None) -> Store:
    return Store(db)
