"""Open the results store: SQLite in the user's data directory by default, any SQLAlchemy URL.

Writers are made safe for several processes at once: on SQLite every write transaction
starts with `BEGIN IMMEDIATE` (it takes the write lock up front, so two importers queue
instead of failing half-way) and waits up to `BUSY_TIMEOUT_S` for the lock; on a server
database the unique constraints turn a race into an IntegrityError, and `write()` retries
the whole transaction (a deadlock victim too).

Errors are one line each and never show a password. A store that cannot be opened or reached
(wrong URL, host, password or database; connection lost) raises `StoreError`, which ends an
import; anything else a database refuses fails only the work that sent it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.pool import NullPool

from mlpace.errors import MlpaceError
from mlpace.results.migrations import migrate

BUSY_TIMEOUT_S = 120
CONNECT_TIMEOUT_S = 10     # a wrong host fails within this, instead of hanging
WRITE_ATTEMPTS = 10
ENV_VAR = "MLPACE_DB"


class StoreError(MlpaceError):
    """The store itself failed (cannot open, cannot connect, connection lost): no point going
    on with other work on it."""


def default_url() -> str:
    """$MLPACE_DB, else a SQLite file in the user's data directory."""
    if os.environ.get(ENV_VAR):
        return _as_url(os.environ[ENV_VAR])
    return f"sqlite:///{_default_path()}"


def _default_path() -> Path:
    import platformdirs
    return Path(platformdirs.user_data_dir("mlpace")) / "results.sqlite"


# A URL starts with a scheme; a plain file path never holds a colon (Windows drives aside,
# which mlpace does not target): "sqlite:/x" or "::::" is a mistyped URL, not a file name.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _as_url(db: str | os.PathLike | None) -> str:
    """A SQLAlchemy URL; a plain path is taken as a SQLite file."""
    if db is None:
        return default_url()
    db = str(db)
    if _SCHEME.match(db):
        return db
    if ":" in db or not db.strip():
        raise StoreError(f"{db!r} is neither a database URL (sqlite:///file.db, "
                         "postgresql+psycopg://user@host/db) nor a file path")
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def sqlite_file(db: str | os.PathLike | None) -> Path | None:
    """The SQLite file `db` names (after $MLPACE_DB and the default), or None for a server
    database or an in-memory one."""
    try:
        url = make_url(_as_url(db))
    except (ArgumentError, ValueError):
        return None             # not a URL at all: opening the store says so
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def _shown(url: str) -> str:
    """The URL as messages show it: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def _check_sqlite_path(url: URL, create: bool = True) -> None:
    """An explicit SQLite file must be in a folder that exists; only the default one is made.
    A reader (`create=False`) never makes an explicit one: a mistyped --db would otherwise
    become a new empty store that answers "no results". An existing file must be an mlpace
    store or empty: connecting switches it to WAL and migrating adds tables, so another
    program's database is refused before either happens."""
    if url.database in (None, "", ":memory:"):
        return
    path = Path(url.database).expanduser()
    default = path.resolve() == _default_path().resolve()
    if default:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create {path.parent}: {err.strerror or err}") from None
    elif not path.parent.is_dir():
        raise StoreError(f"cannot open results store {url}: the folder {path.parent} does not "
                         "exist (create it first)")
    if path.is_dir():
        raise StoreError(f"cannot open results store {url}: {path} is a folder")
    if not path.exists():
        if not create and not default:
            raise StoreError(f"no results store at {path} (`mlpace import PATH --db {path}` "
                             "makes one)")
        return
    try:
        tables = _sqlite_tables(path)
    except sqlite3.Error as err:
        raise StoreError(f"results store {url}: {err}") from None
    if tables and "schema_version" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(f"{path} is a SQLite database of something else (tables: {shown}), "
                         "not an mlpace results store; refusing to change it")


def _sqlite_tables(path: Path) -> list[str]:
    """The tables of an existing SQLite file, read without changing it (read-only)."""
    from urllib.parse import quote
    with closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)) as db:
        return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _sqlite_setup(engine: Engine, foreign_keys: bool = True) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None     # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
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

    def __init__(self, db: str | os.PathLike | None = None, create: bool = True):
        self.url = _as_url(db)
        self.shown_url = _shown(self.url)
        try:
            url = make_url(self.url)
            if url.drivername == "postgresql":
                # SQLAlchemy's default driver is psycopg2; mlpace's `postgres` extra is psycopg 3.
                url = url.set(drivername="postgresql+psycopg")
            options = {}
            if url.get_backend_name() == "sqlite":
                _check_sqlite_path(url, create)
            elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
                options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
            self.engine = create_engine(url, **options)
        except (ArgumentError, ImportError, OSError, ValueError) as err:
            raise StoreError(f"cannot open results store {self.shown_url}: {err}") from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine)
        if self.engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:"):
            self._migrate_sqlite_file(url)
        else:
            self.write(migrate)     # a server database, or a new in-memory one

    def _migrate_sqlite_file(self, url: URL) -> None:
        """A SQLite migration rebuilds tables, which SQLite's own recipe does with foreign keys
        off; that pragma is ignored inside a transaction, so the migration gets a connection
        of its own, made with them off (`migrate` checks them before committing)."""
        migration_engine = create_engine(url, poolclass=NullPool)
        _sqlite_setup(migration_engine, foreign_keys=False)
        try:
            self._transaction(migration_engine, migrate)
        finally:
            migration_engine.dispose()

    def write(self, work, *args, **kwargs):
        """Run work(connection, ...) in one transaction; all of it is stored or none of it.

        A transaction that lost a race with another writer (lock timeout, or a unique key
        inserted by the other one first) is rolled back and run again from the start.
        """
        return self._transaction(self.engine, work, *args, **kwargs)

    def _transaction(self, engine: Engine, work, *args, **kwargs):
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with engine.connect() as connection:
                    connection = connection.execution_options(mlpace_write=True)
                    with connection.begin():
                        return work(connection, *args, **kwargs)
            except DBAPIError as err:
                if attempt < WRITE_ATTEMPTS - 1 and _is_race(err):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise self._error(err) from None
            except OverflowError as err:
                # SQLite's driver refuses an integer over 64 bits before SQLAlchemy sees it
                # (PostgreSQL's DataError is a DBAPIError, above): only this work fails, alike.
                raise MlpaceError(f"results store {self.shown_url}: a number too large for the "
                                  f"database ({err})") from None

    def _error(self, err: DBAPIError) -> MlpaceError:
        """A lost or refused connection stops everything (StoreError); anything else, such as
        a value the server refuses, fails only the work that sent it."""
        lost = isinstance(err, (OperationalError, InterfaceError)) or err.connection_invalidated
        return (StoreError if lost else MlpaceError)(f"results store {self.shown_url}: {_short(err)}")

    @contextmanager
    def read(self):
        """A connection for queries; a database error becomes one clear MlpaceError."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except DBAPIError as err:
            raise StoreError(f"results store {self.shown_url}: {_short(err)}") from None

    def close(self) -> None:
        self.engine.dispose()


def _is_race(err: DBAPIError) -> bool:
    """A transaction that lost to another writer: a unique key, a lock, a deadlock victim."""
    if err.connection_invalidated:
        return False
    text = str(getattr(err, "orig", err)).lower()
    return isinstance(err, IntegrityError) or "locked" in text or "busy" in text \
        or "deadlock" in text or "could not serialize" in text


def _short(err: Exception) -> str:
    return str(getattr(err, "orig", err)).splitlines()[0]


def open_store(db: str | os.PathLike | None = None, create: bool = True) -> Store:
    """The store at `db` (see `_as_url`); `create=False` for verbs that only read it: they
    refuse a SQLite file that does not exist rather than make an empty one."""
    return Store(db, create)
