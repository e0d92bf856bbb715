"""Sub-commands of the results store (see mlpace.cli.COMMAND_MODULES): import, results,
report, compare. Light at import time: the store and SQLAlchemy load inside the handlers."""

from __future__ import annotations

import json
import sys

from mlpace.errors import MlpaceError
from mlpace.io import csv_text, out_folder, printable, refuse_writing_into

DB_HELP = ("results store: a SQLAlchemy URL (sqlite:///file.db, postgresql://...) or a file path; "
           "default $MLPACE_DB, else results.sqlite in the user data folder")


def register(subparsers) -> None:
    """Add this area's verbs to the CLI."""
    p = subparsers.add_parser("import", help="load submission trees (yours or published) into the results store")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="folders holding <org>/results + <org>/systems (a round, a division, or one org)")
    p.add_argument("--round", dest="round_name", metavar="NAME", type=round_name,
                   help="round to file the results under (default: from a folder such as "
                        "training_v1.0, else 'training local' / 'inference local')")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=run_import)

    p = subparsers.add_parser("results", help="query the results store")
    p.add_argument("--kind", choices=["training", "inference"], default="training")
    for name in ("round", "division", "availability", "benchmark", "system", "submitter",
                 "accelerator", "scenario"):
        p.add_argument(f"--{name}", help=f"keep only this {name}" +
                       (" (substring)" if name in ("system", "submitter", "accelerator") else ""))
    p.add_argument("--all", dest="every", action="store_true",
                   help="every result set (a system that trained a benchmark again has several); "
                        "default: each system's latest")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=run_results)

    p = subparsers.add_parser("report", help="write the static HTML report site (works offline)")
    p.add_argument("--out", required=True, type=out_folder, help="folder to write the site into")
    p.add_argument("--compare", metavar="SYSTEM", help="system to compare with all others on compare.html")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=run_report)

    p = subparsers.add_parser("compare", help="speedup of a system over others, per training benchmark "
                              "(only results at the same scale and target)")
    p.add_argument("system")
    p.add_argument("--against", nargs="+", required=True, metavar="SYSTEM")
    p.add_argument("--benchmark", help="compare on this benchmark only")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(handler=run_compare)


def round_name(text: str) -> str:
    """--round as the store keeps it: a name people read in tables and on the report site, so
    no control characters and not blank (which would file results under a round named " ")."""
    if not text.strip() or printable(text) != text or len(text) > 64:
        raise MlpaceError(f"--round {printable(text)!r} must be a name of 1 to 64 printable "
                          "characters, such as 'training v1.0' or 'my lab'")
    return text.strip()


def format_rows(rows: list[dict], columns: list[str], fmt: str) -> str:
    """Rows as an aligned text table, CSV or JSON (only `columns`, in that order)."""
    rows = [{c: row.get(c) for c in columns} for row in rows]
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if fmt == "csv":
        return csv_text(columns, rows).rstrip("\n")
    text = [[c for c in columns]] + [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in text) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in text)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return printable(value)     # stored names came from trees: no control codes to the terminal


def run_import(args) -> int:
    from mlpace.results.importers import import_trees
    from mlpace.results.store import open_store, sqlite_file

    database = sqlite_file(args.db)
    if database is not None:
        refuse_writing_into(database, args.paths, "--db")
    store = open_store(args.db)

    def progress(sub, outcome):
        # printable: the root is a path the user typed, and may hold control characters
        if isinstance(outcome, Exception):
            print(printable(f"error: {sub.submitter} ({sub.round_name}) not imported: {outcome}"),
                  file=sys.stderr)
        else:
            print(printable(f"{sub.submitter} ({sub.round_name}, {sub.root}): {outcome['added']} "
                            f"added, {outcome['unchanged']} unchanged"))

    report = import_trees(store, args.paths, args.round_name, on_submission=progress)
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"{report.submissions} submission(s) imported into {store.shown_url}: {report.added} "
          f"results added, {report.unchanged} unchanged ({report.runs} runs)")
    return 2 if report.failures else 0


TRAINING_COLUMNS = ["round", "division", "availability", "submitter", "system", "accelerator",
                    "accelerator_count", "benchmark", "scale", "target", "minutes", "score",
                    "runs_counted", "runs_failed", "date"]
INFERENCE_COLUMNS = ["round", "division", "availability", "submitter", "system", "accelerator",
                     "accelerator_count", "benchmark", "scenario", "scale", "metric", "value",
                     "valid", "accuracy", "notes"]


def run_results(args) -> int:
    from mlpace.results import queries
    from mlpace.results.comparable import target_text
    from mlpace.results.queries import decode_target
    from mlpace.results.store import open_store

    filters = queries.Filters(**{name: getattr(args, name) for name in (
        "round", "division", "availability", "benchmark", "system", "submitter", "accelerator",
        "scenario")})
    with open_store(args.db, create=False).read() as conn:
        if args.kind == "training":
            rows, columns = queries.training_results(conn, filters, args.every), TRAINING_COLUMNS
            for row in rows:
                row["target"] = target_text(decode_target(row["target"]))
        else:
            rows, columns = queries.inference_results(conn, filters, args.every), INFERENCE_COLUMNS
    if not rows and args.format == "table":
        print("no results match (import some with `mlpace import PATH`)", file=sys.stderr)
        return 0
    print(format_rows(rows, columns, args.format))
    return 0


def run_report(args) -> int:
    from mlpace.report.site import build_site
    from mlpace.results.store import open_store

    index = build_site(open_store(args.db, create=False), args.out, compare_system=args.compare)
    print(f"report written: {index}")
    return 0


def run_compare(args) -> int:
    from mlpace.results import queries
    from mlpace.results.store import open_store

    with open_store(args.db, create=False).read() as conn:
        rows = queries.compare(conn, args.system, args.against, args.benchmark)
    print(format_rows(rows, ["benchmark", "scale", "target", "system", "division", "minutes",
                             "against", "against_division", "against_minutes", "speedup"],
                      args.format))
    return 0
