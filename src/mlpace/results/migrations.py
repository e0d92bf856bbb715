"""Versioned schema migrations, hand-written (a table of steps; no alembic needed).

A new store is created directly at the newest schema (`schema.metadata`) and stamped with
`LATEST`. An older store gets each pending step of `MIGRATIONS`, in order, inside one
transaction, each step recorded in the `schema_version` table. To change the schema: edit
`schema.py`, then append `(next_version, "what changed", step)` where `step(connection)`
brings a store at the previous version to the new one (ALTER TABLE ...).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import MetaData, Table, func, inspect, select, text, update
from sqlalchemy.engine import Connection

from mlpace.errors import MlpaceError
from mlpace.results import comparable
from mlpace.results import schema as s
from mlpace.results.schema import metadata, schema_version


def _initial(connection: Connection) -> None:
    metadata.create_all(connection)


def _v2_facts_and_history(connection: Connection) -> None:
    """Results carry scale, metric and division (training: also date and config); a result's
    key gains the hash of its files, so a system keeps every result set it made."""
    sqlite = connection.dialect.name == "sqlite"
    columns = {"training_results": ["scale VARCHAR(16) NOT NULL DEFAULT 'reference'",
                                    "metric VARCHAR(64) NOT NULL DEFAULT ''",
                                    "division VARCHAR(16) NOT NULL DEFAULT 'unknown'",
                                    "run_date VARCHAR(32)", "config TEXT"],
               "inference_results": ["scale VARCHAR(16) NOT NULL DEFAULT 'unknown'",
                                     "division VARCHAR(16) NOT NULL DEFAULT 'unknown'"]}
    for table, added in columns.items():
        for column in added:
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    _v2_fill_facts(connection)
    if sqlite:
        _sqlite_rebuild(connection, s.training_results)
        _sqlite_rebuild(connection, s.inference_results)
        return
    for table, old, new, key in (
            ("training_results", "uq_training_result", "uq_training_result_files",
             "system_id, benchmark, content_hash"),
            ("inference_results", "uq_inference_result", "uq_inference_result_files",
             "system_id, benchmark, scenario, content_hash")):
        connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {old}"))
        connection.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {new} UNIQUE ({key})"))
        for column in columns[table]:
            if "DEFAULT" in column:     # the defaults only filled the old rows
                name = column.split()[0]
                connection.execute(text(f"ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT"))


def _v2_fill_facts(connection: Connection) -> None:
    """The facts of v1 rows, decided as an import decides them (comparable.py)."""
    t, i = s.training_results, s.inference_results
    first_start = (select(s.training_runs.c.result_id, func.min(s.training_runs.c.run_start_ms).label("start"))
                   .group_by(s.training_runs.c.result_id).subquery())
    rows = connection.execute(
        select(t.c.id, t.c.benchmark, t.c.target, s.systems.c.division, s.rounds.c.version,
               first_start.c.start)
        .select_from(t.join(s.systems).join(s.rounds).outerjoin(first_start, first_start.c.result_id == t.c.id)))
    for row in rows.all():
        stored = json.loads(row.target) if row.target else None
        # v1 filled a target no log stated with the v1.0/v1.1 reference target, even for
        # later rounds, where that was a guess: a published round's target is the official one.
        target = comparable.training_target(row.benchmark, row.version, None) \
            if comparable.is_published(row.version) else stored
        connection.execute(update(t).where(t.c.id == row.id).values(
            scale=comparable.training_scale(row.benchmark, row.version, target),
            metric=comparable.metric_of(row.benchmark), target=json.dumps(target),
            division=row.division, run_date=comparable.run_date(row.start)))
    rows = connection.execute(select(i.c.id, s.systems.c.division, s.rounds.c.version)
                              .select_from(i.join(s.systems).join(s.rounds)))
    for row in rows.all():
        connection.execute(update(i).where(i.c.id == row.id).values(
            scale=comparable.inference_scale(row.version), division=row.division))


def _sqlite_rebuild(connection: Connection, table: Table) -> None:
    """Give a SQLite table the constraints `table` declares now (SQLite cannot alter them):
    SQLite's own recipe - create the new table, copy the rows, drop the old, rename the new.
    It runs with foreign keys off (store.py), or dropping a parent would delete its children."""
    scratch = MetaData()
    for other in metadata.sorted_tables:       # what the new table's foreign keys name
        if other is not table:
            other.to_metadata(scratch)
    new = table.to_metadata(scratch, name=f"{table.name}_new")
    new.create(connection)
    names = ", ".join(column.name for column in table.columns)
    connection.execute(text(f"INSERT INTO {new.name} ({names}) SELECT {names} FROM {table.name}"))
    connection.execute(text(f"DROP TABLE {table.name}"))
    connection.execute(text(f"ALTER TABLE {new.name} RENAME TO {table.name}"))


def _v3_file_stamps(connection: Connection) -> None:
    s.file_stamps.create(connection)


# Any fixed number: the advisory lock that keeps two migrations from running at once.
MIGRATION_LOCK = 7_270_801

# (version, description, step). Version 1 is the initial schema.
MIGRATIONS = [
    (1, "initial schema: rounds, submitters, systems, training results and runs, inference results",
     _initial),
    (2, "results carry scale, metric, division, date and config; every result set is kept",
     _v2_facts_and_history),
    (3, "file stamps: importing unchanged files again hashes none of them", _v3_file_stamps),
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
    if steps and connection.dialect.name == "sqlite":
        broken = connection.execute(text("PRAGMA foreign_key_check")).all()
        if broken:     # rolls the whole migration back
            raise MlpaceError(f"schema migration left {len(broken)} rows without their parent "
                              f"(first: {tuple(broken[0])}); the store is unchanged")
    return len(steps)
