"""Versioned schema migrations, hand-written (a table of steps; no alembic needed).

A new store is created directly at the newest schema (`schema.metadata`) and stamped with
`LATEST`. An older store gets each pending step of `MIGRATIONS`, in order, inside one
transaction, each step recorded in the `schema_version` table. To change the schema: edit
`schema.py`, then append `(next_version, "what changed", step)` where `step(connection)`
brings a store at the previous version to the new one (ALTER TABLE ...).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from mlpace.errors import MlpaceError
from mlpace.results.schema import metadata, schema_version


def _initial(connection: Connection) -> None:
    metadata.create_all(connection)


# Any fixed number: the advisory lock that keeps two migrations from running at once.
MIGRATION_LOCK = 7_270_801

# (version, description, step). Version 1 is the initial schema.
MIGRATIONS = [
    (1, "initial schema: rounds, submitters, systems, training results and runs, inference results",
     _initial),
]


def latest_version() -> int:
    return MIGRATIONS[-1][0]


def current_version(connection: Connection) -> int:
    """The store's schema version; 0 for an empty database."""
    if not inspect(connection).has_table("schema_version"):
        return 0
    return connection.execute(select(schema_version.c.version).order_by(
        schema_version.c.version.desc()).limit(1)).scalar() or 0


def _stamp(connection: Connection, version: int, description: str) -> None:
    connection.execute(schema_version.insert().values(
        version=version, description=description,
        applied_at=datetime.now(timezone.utc).isoformat(timespec="seconds")))


def migrate(connection: Connection) -> int:
    """Bring the store to the newest schema; returns how many steps ran. Call in a transaction.

    Two processes opening a new store at once must not both create it: SQLite serialises them
    with BEGIN IMMEDIATE (see store.py); PostgreSQL with a transaction-scoped advisory lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    version = current_version(connection)
    newest = latest_version()
    if version > newest:
        raise MlpaceError(f"the results store has schema version {version}, newer than this "
                          f"mlpace knows ({newest}); upgrade mlpace")
    if version == 0:
        metadata.create_all(connection)
        _stamp(connection, newest, "created at this version")
        return 1
    steps = [(v, d, step) for v, d, step in MIGRATIONS if v > version]
    for v, description, step in steps:
        step(connection)
        _stamp(connection, v, description)
    return len(steps)
