"""Time importing a whole published training round (about 2,750 logs) into a fresh store, then again.

The synthetic round is the published v1.0 fixture logs (135 real logs, 26 MB) repeated under
renamed organisations (`NVIDIA_c2`, ...) until it holds `--logs` result files, so the importer
sees real, messy logs at the size of a real round. Files are hard-linked when the file system
allows (copied otherwise). Prints one line per measurement:

    .venv/bin/python bench/bench_import.py                  # 2,835 logs, SQLite in a temp folder
    .venv/bin/python bench/bench_import.py --db postgresql  # a throw-away PostgreSQL server
    .venv/bin/python bench/bench_import.py --db postgresql+psycopg://user@host/db   # yours

`--db postgresql` starts a throw-away server on loopback with `.ci/postgres` and stops it
after. A PostgreSQL URL names a server: the benchmark imports into a new database of its own
on it (CREATE DATABASE, dropped afterwards), so every figure is of a fresh store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from round_tree import FIXTURES, make_round


REPO = Path(__file__).resolve().parents[1]


@contextmanager
def throwaway_postgres():
    """The URL of a new loopback PostgreSQL server (`.ci/postgres start`), stopped after."""
    script = str(REPO / ".ci" / "postgres")
    exports = subprocess.run([script, "start"], capture_output=True, text=True)
    if exports.returncode != 0:
        raise SystemExit(f"cannot start PostgreSQL: {exports.stderr.strip()}")
    env = dict(line.removeprefix("export ").split("=", 1) for line in exports.stdout.splitlines())
    try:
        yield env["MLPACE_TEST_POSTGRES"]
    finally:
        subprocess.run([script, "stop"], env={**os.environ, **env}, check=False)


@contextmanager
def fresh_store_url(db: str | None, tmp: Path):
    """A URL of an empty store: a new SQLite file, or a new database on the given server."""
    if db == "postgresql":
        with throwaway_postgres() as server, fresh_store_url(server, tmp) as url:
            yield url
        return
    if not db or not db.startswith("postgresql"):
        yield db or str(tmp / "bench.sqlite")
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    name = f"mlpace_bench_{os.getpid()}"
    admin = create_engine(db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(db).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=2750,
                        help="result files in the synthetic round (default 2,750: the size of v2.0)")
    parser.add_argument("--db", help="SQLAlchemy URL, or 'postgresql' for a throw-away local server "
                                     "(default: a fresh SQLite file in a temp folder)")
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        print(f"fixtures not found at {FIXTURES}", file=sys.stderr)
        return 2

    from mlpace.results.importers import import_trees
    from mlpace.results.store import open_store

    with tempfile.TemporaryDirectory(prefix="mlpace-bench-") as tmp, \
            fresh_store_url(args.db, Path(tmp)) as url:
        tree = Path(tmp) / "training_v1.0"
        files = make_round(tree, args.logs)
        size = sum(p.stat().st_size for p in tree.glob("*/results/*/*/result_*.txt"))
        store = open_store(url)
        print(f"round: {files} result logs, {size / 2**20:.0f} MB, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}, store {store.shown_url}")
        for label in ("import (fresh store)", "re-import (nothing new)"):
            start = time.perf_counter()
            report = import_trees(store, [tree])
            seconds = time.perf_counter() - start
            print(f"{label}: {seconds:.2f} s  ({report.added} results added, {report.unchanged} "
                  f"unchanged, {report.runs} runs, {files / seconds:.0f} logs/s)")
            if report.failures:
                print("failures:", *report.failures, sep="\n  ", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
