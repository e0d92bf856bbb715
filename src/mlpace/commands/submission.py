"""Verbs of the submission area: sysinfo, package, check, summarize.

Each verb is a thin wrapper over `mlpace.submission`; nothing heavy is imported until a
verb runs (the official checkers pull in pandas and friends).
"""

from __future__ import annotations

import json
import sys

from mlpace.io import (json_text, out_file, out_folder, printable, refuse_writing_into,
                       write_atomic)
from mlpace.rules.divisions import DIVISIONS
from mlpace.rules.rounds import MLPACE_RULESET


def register(subparsers) -> None:
    """Add this area's verbs to the CLI."""
    p = subparsers.add_parser("sysinfo", help="print this machine's MLPerf system description (JSON)")
    p.add_argument("--system-name", help="system name (default: host, accelerator, framework)")
    p.add_argument("--submitter", default="mlpace", help="organisation submitting (default: mlpace)")
    p.add_argument("--division", default="open", choices=DIVISIONS)
    p.add_argument("--availability", default="onprem",
                   help="onprem, cloud, preview or research (default: onprem)")
    p.add_argument("--overrides", metavar="JSON", help="JSON file of fields to set by hand")
    p.add_argument("--out", metavar="FILE", type=out_file, help="write to FILE instead of standard output")
    p.set_defaults(handler=_sysinfo)

    p = subparsers.add_parser("package", help="turn mlpace runs into an official submission tree")
    p.add_argument("sources", nargs="+", metavar="RESULTS", help="folders written by `mlpace train` / `mlpace infer`")
    p.add_argument("--org", required=True, help="organisation name used in the tree")
    p.add_argument("--out", required=True, type=out_folder, help="folder to create the submission in")
    p.add_argument("--division", default="open", choices=DIVISIONS)
    p.add_argument("--availability", default="onprem",
                   help="onprem (available on-premise), cloud, preview or research (default: onprem)")
    p.add_argument("--system-desc", metavar="JSON", help="system-description fields to set by hand")
    p.add_argument("--ruleset", default=None, help=f"training ruleset for run counts (default: mlpace's, {MLPACE_RULESET})")
    p.add_argument("--system-type", help="inference: datacenter, edge or datacenter,edge (v1.1 system_type)")
    p.set_defaults(handler=_package)

    p = _tree_verb(subparsers, "check", "check a submission tree against every rule", _check,
                   workers_for="the checkers", json_help="also write the report as JSON")
    p.add_argument("--no-compliance", action="store_true", help="skip the (slow) official compliance checker")
    p.add_argument("--all", action="store_true", help="list passed checks too")

    p = _tree_verb(subparsers, "summarize", "score a submission tree: the MLPerf results table", _summarize,
                   workers_for="parsing", json_help="write scores, rules applied and details as JSON")
    p.add_argument("--csv", metavar="FILE", type=out_file, help="write the table as CSV")


def _tree_verb(subparsers, name: str, summary: str, handler, workers_for: str, json_help: str):
    """A verb that reads a submission tree (check, summarize): the tree, its training ruleset,
    a JSON copy of what it finds and its worker processes."""
    p = subparsers.add_parser(name, help=summary)
    p.add_argument("root", help="submission folder (an org, a round, or a division)")
    p.add_argument("--ruleset", help="training ruleset, e.g. 1.0.0 (default: from folder name or run dates)")
    p.add_argument("--json", metavar="FILE", type=out_file, help=json_help)
    p.add_argument("--workers", type=int, default=None, help=f"processes for {workers_for} (default: up to 4)")
    p.set_defaults(handler=handler)
    return p


def escape(value) -> str:
    """Text from a tree as it may reach a terminal: no console markup, no control characters
    (a system description can hold an escape sequence that clears the screen)."""
    from rich.markup import escape as no_markup

    return no_markup(printable(value))


def _workers(count: int | None) -> int | None:
    """--workers within what one machine can run (a huge count would start that many processes)."""
    if count is not None and not 1 <= count <= 256:
        from mlpace.errors import MlpaceError
        raise MlpaceError(f"--workers must be a whole number from 1 to 256, not {count}")
    return count


def _sysinfo(args) -> int:
    from mlpace.errors import MlpaceError
    from mlpace.submission.package import AVAILABILITY
    from mlpace.submission.sysinfo import capture_system_description, load_overrides
    status = AVAILABILITY.get(args.availability.lower())
    if status is None:
        raise MlpaceError(f"--availability must be one of {', '.join(sorted(set(AVAILABILITY)))}")
    desc = capture_system_description(args.system_name, args.submitter, args.division, status)
    desc.update(load_overrides(args.overrides))
    text = json.dumps(desc, indent=2) + "\n"
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _package(args) -> int:
    from mlpace.submission.package import package
    from mlpace.submission.sysinfo import load_overrides
    refuse_writing_into(args.out, args.sources, "--out")
    out = package(args.sources, args.org, args.out, division=args.division,
                  availability=args.availability, overrides=load_overrides(args.system_desc),
                  ruleset=args.ruleset or MLPACE_RULESET, system_type=args.system_type)
    print(f"packaged into {out}; next: mlpace check {out}")
    return 0


def _check(args) -> int:
    from mlpace.console import make_console as Console
    from rich.table import Table

    from mlpace.submission.check import FAIL, PASS, WARN, check
    if args.json:
        refuse_writing_into(args.json, [args.root], "--json", top_ok=True)
    report = check(args.root, ruleset=args.ruleset, compliance=not args.no_compliance,
                   workers=_workers(args.workers))
    console = Console()
    if report.round:
        console.print(f"rules: training round v{report.round.version} (ruleset {report.round.ruleset}; "
                      f"{report.round.how})")
    shown = [f for f in report.findings if args.all or f.level != PASS]
    if shown:
        table = Table(show_lines=False)
        for column in ("result", "file", "rule", "why"):
            table.add_column(column, overflow="fold")
        style = {PASS: "green", WARN: "yellow", FAIL: "bold red"}
        for f in shown:
            table.add_row(f"[{style[f.level]}]{f.level.upper()}[/]", escape(f.path), escape(f.rule),
                          escape(f.reason))
        console.print(table)
    from mlpace.words import plural
    verdict = "[green]PASSED[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"{verdict}: {report.count(PASS)} passed, {plural(report.count(WARN), 'warning')}, "
                  f"{report.count(FAIL)} failed")
    if args.json:
        write_atomic(args.json, json_text(report.to_json()))
    return 0 if report.ok else 1


def _summarize(args) -> int:
    from mlpace.console import make_console as Console
    from rich.table import Table

    from mlpace.submission.output import write_summary_csv, write_summary_json
    from mlpace.submission.summarize import summarize
    for option, path in (("--csv", args.csv), ("--json", args.json)):
        if path:
            refuse_writing_into(path, [args.root], option, top_ok=True)
    summary = summarize(args.root, ruleset=args.ruleset, workers=_workers(args.workers))
    console = Console()
    if summary.training_rows:
        benchmarks = [b for b in summary.benchmark_columns()
                      if any(row.get(b) is not None for row in summary.training_rows)]
        # The full official columns are in --csv/--json; the screen gets what fits.
        table = Table(title="MLPerf Training: time to train (minutes)")
        for column in ("division", "submitter", "system", "accelerators", *benchmarks):
            table.add_column(column, justify="right" if column in benchmarks else "left",
                             no_wrap=column in benchmarks)
        for row in summary.training_rows:
            # a CPU-only system has no accelerators: say so, never show its CPU in this column
            accelerators = f"{row['accelerators_count']} x {row['accelerator_model_name']}" \
                if row["accelerators_count"] else "none (CPU only)"
            table.add_row(*map(escape, (str(row["division"]), str(row["submitter"]), str(row["system"]),
                                        accelerators)),
                          *[f"{row[b]:.2f}" if row.get(b) is not None else "" for b in benchmarks])
        console.print(table)
        for line in summary.round.rules():
            console.print(f"  rule: {line}", style="dim")
        for result in summary.training:
            for note in result.notes:
                # escaped whole: "box[" + "/" + "]x" escaped apart would join into markup
                console.print("  note: " + escape(f"{result.system}/{result.benchmark}: {note}"))
    if summary.inference_rows:
        table = Table(title="MLPerf Inference")
        for column in ("division", "submitter", "system", "benchmark", "scenario", "metric",
                       "value", "valid", "accuracy"):
            table.add_column(column, justify="right" if column in ("value", "accuracy") else "left")
        for row in summary.inference_rows:
            accuracy = f"{row['accuracy_metric']}={row['accuracy']:g}" if row["accuracy"] is not None else ""
            value = f"{row['value']:g}" if isinstance(row["value"], (int, float)) else ""
            table.add_row(*map(escape, (str(row["division"]), str(row["submitter"]), str(row["system"]),
                                        row["benchmark"], row["scenario"], str(row["metric"] or ""), value)),
                          "yes" if row["valid"] else "[red]NO[/]", escape(accuracy))
        console.print(table)
    if not summary.training_rows and not summary.inference_rows:
        console.print(f"no results found under {args.root}", markup=False)
    for path, problem in summary.problems:
        console.print("[yellow]problem:[/] " + escape(f"{path}: {problem}"))
    if args.csv:
        for path in write_summary_csv(summary, args.csv):
            console.print(f"wrote {path}", markup=False)
    if args.json:
        console.print(f"wrote {write_summary_json(summary, args.json)}", markup=False)
    return 0
