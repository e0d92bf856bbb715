"""Write the static report site from the results store.

Pages (all plain HTML with inline SVG; the one script only makes tables sortable):
- index.html: the round tables as MLCommons publishes them - per round, division and
  availability, rows are systems (processor, accelerator, counts, software), columns are
  benchmarks (training: minutes; inference: the scenario's metric);
- benchmarks/<kind>-<benchmark>.html: per round, every run of every system on one time axis
  and each system's convergence curves (quality against time per run, the target line);
  inference: one bar chart per scenario;
- systems/<id>.html: the full system description, its results, its speedup against the others;
- compare.html: one chosen system against every other (speedup per benchmark);
- history.html: best closed result per benchmark (and scenario) per round, and the speedup
  between rounds; below, each system that trained a benchmark more than once, over time.

Numbers are only set side by side where they mean the same thing (`results/comparable.py`):
mini-scale runs have tables of their own, apart from the published rounds; no speedup is
drawn between results at different scales or against different targets; open-division
results are marked "(open)" wherever they appear beside closed ones.

Each file is written to a temporary name and renamed (`mlpace.io.write_atomic`), so an
interrupted build never leaves a half-written page, and nothing else in the output folder
is touched.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from html import escape
from importlib import resources
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import (json_text, make_folder, open_limited, read_json_limited,
                       refuse_linked_folders, write_atomic)
from mlpace.report import svg
from mlpace.results import comparable, queries
from mlpace.results.store import Store
from mlpace.rules.benchmarks import BENCHMARKS
from mlpace.rules.divisions import AVAILABILITY_TITLES

ASSETS = ("style.css", "sort.js")

# The pages a build wrote, so that the next build into the same folder can remove the ones it
# no longer writes: a system or benchmark gone from the store (another store, a re-import)
# left its old page behind, still linked from bookmarks and saying what the store no longer
# does. Only files listed here, of the form below, are ever removed: never a file of the
# user's, even in benchmarks/ or systems/, and never a path a crafted list names.
PAGES_WRITTEN = "mlpace-pages.json"
GENERATOR = '<meta name="generator" content="mlpace report">'   # on every page, near the top
OWN_PAGE = re.compile(r"(benchmarks|systems)/[A-Za-z0-9_.-]+\.html")
SYSTEM_HEADERS = ["Submitter", "System", "Processor", "#", "Accelerator", "#", "Software"]


# ---------------------------------------------------------------- small HTML helpers

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower() or "x"


def _page(title: str, body: str, depth: int, benchmarks: list[tuple[str, str]]) -> str:
    up = "../" * depth
    links = ""
    for kind in ("training", "inference"):
        mine = [(slug, name) for slug, name in benchmarks if slug.startswith(kind + "-")]
        if mine:
            links += f' <span class="muted">{kind.capitalize()}:</span> ' + " ".join(
                f'<a href="{up}benchmarks/{escape(slug)}.html">{escape(name)}</a>' for slug, name in mine)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{GENERATOR}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - mlpace results</title>
<link rel="stylesheet" href="{up}assets/style.css">
<script src="{up}assets/sort.js" defer></script>
</head><body>
<nav><a href="{up}index.html"><b>mlpace results</b></a><a href="{up}history.html">History</a>
<a href="{up}compare.html">Compare</a>{links}</nav>
<main><h1>{escape(title)}</h1>
{body}
</main></body></html>
"""


def _table(headers: list[str], rows: list[list], css: str = "sortable") -> str:
    """rows hold cells: plain values, or (html, sort_key) for a cell with markup."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple):
                html, key = cell
                attr = f' data-sort="{escape(str(key))}"' if key is not None else ""
                numeric = isinstance(key, (int, float))
                cells.append(f'<td{attr}{" class=num" if numeric else ""}>{html}</td>')
            elif isinstance(cell, (int, float)):
                cells.append(f'<td class="num" data-sort="{cell}">{_fmt(cell)}</td>')
            else:
                cells.append(f"<td>{escape(_fmt(cell))}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="{css}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table>')


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3g}"
    return str(value)


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _system_cells(row: dict, up: str) -> list:
    return [row["submitter"],
            (_link(f"{up}systems/{row['system_id']}.html", row["title"] or row["system"]), row["system"]),
            row["processor"], row["processor_count"],
            row["accelerator"] or "-", row["accelerator_count"], row["framework"]]


def _name(row: dict) -> str:
    """Submitter and system, marked when the result is open division."""
    return f"{row['submitter']} {row['system']}" + (" (open)" if row["division"] == "open" else "")


def _quality(value, target):
    """A plottable number from an eval value; multi-metric (maskrcnn) uses the target's first key."""
    if isinstance(value, dict):
        key = next(iter(target)) if isinstance(target, dict) and target else next(iter(value), None)
        value = value.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- pages

MINI_NOTE = ("Your own runs at mini scale: small models on generated data, to mini targets. "
             "They are comparable with each other, never with the published rounds above.")


def _index(training: list[dict], inference: list[dict]) -> str:
    parts = ['<p>Every result in the store (each system\'s latest), grouped as MLCommons '
             'publishes its rounds. Training cells are olympic-mean minutes to train (lower is '
             'better; "1 run": a single run\'s time, not an olympic score); click a header to '
             'sort.</p>']
    for mini in (False, True):
        chosen = [(kind, [r for r in rows if (r["scale"] == "mini") == mini])
                  for kind, rows in (("training", training), ("inference", inference))]
        if mini and any(rows for _, rows in chosen):
            parts.append(f'<h2 id="mini-scale">Mini scale: your own runs</h2><p>{MINI_NOTE}</p>')
        for kind, rows in chosen:
            by_round = defaultdict(list)
            for row in rows:
                by_round[(row["version"], row["round"])].append(row)
            for version, round_name in sorted(by_round, key=lambda k: queries.version_key(k[0])):
                tag = "h3" if mini else "h2"
                parts.append(f'<{tag} id="{_slug(round_name + (" mini" if mini else ""))}">'
                             f'{escape(round_name)}</{tag}>')
                groups = defaultdict(list)
                for row in by_round[(version, round_name)]:
                    groups[(row["division"], row["availability"])].append(row)
                for division, availability in sorted(groups):
                    title = AVAILABILITY_TITLES.get(availability, availability)
                    parts.append(f"<h3>{escape(division.capitalize())} division, {escape(title)}</h3>")
                    parts.append(_round_table(kind, groups[(division, availability)]))
    if not training and not inference:
        parts.append("<p>The store is empty: run <code>mlpace import PATH</code> first.</p>")
    return "\n".join(parts)


def _round_table(kind: str, rows: list[dict]) -> str:
    if kind == "training":
        columns = sorted({r["benchmark"] for r in rows})
        headers = SYSTEM_HEADERS + columns
        column_of = lambda r: r["benchmark"]  # noqa: E731
    else:
        columns = sorted({(r["benchmark"], r["scenario"]) for r in rows})
        headers = SYSTEM_HEADERS + [f"{b} {s}" for b, s in columns]
        column_of = lambda r: (r["benchmark"], r["scenario"])  # noqa: E731
    systems: dict[int, dict] = {}
    cells: dict[tuple[int, object], dict] = {}
    for row in rows:
        systems.setdefault(row["system_id"], row)
        cells[(row["system_id"], column_of(row))] = row
    table_rows = []
    for system_id, system in sorted(systems.items(), key=lambda kv: (kv[1]["submitter"], kv[1]["system"])):
        line = _system_cells(system, "")
        for column in columns:
            result = cells.get((system_id, column))
            if result is None:
                line.append(("", None))
            elif kind == "training":
                bench = f"benchmarks/{_slug('training-' + result['benchmark'])}.html"
                text = _fmt(result["minutes"]) if result["minutes"] is not None else "no score"
                mark = ' <span class="muted">(1 run)</span>' if result["score"] == "single run" else ""
                line.append((_link(bench, text) + mark,
                             result["minutes"] if result["minutes"] is not None else ""))
            else:
                value, unit = queries.inference_value(result["metric"], result["value"])
                bench = f"benchmarks/{_slug('inference-' + result['benchmark'])}.html"
                mark = " (invalid)" if not result["valid"] else " (see notes)" if result["notes"] else ""
                line.append((f'{_link(bench, _fmt(value))}<span class="muted" title="{escape(unit)}">'
                             f'{escape(mark)}</span>', value))
        table_rows.append(line)
    return _table(headers, table_rows)


def _training_benchmark(benchmark: str, rows: list[dict], runs: dict[int, list[dict]]) -> str:
    spec = BENCHMARKS.get(benchmark)
    parts = []
    if spec:
        parts.append(f"<p>{escape(spec.area.capitalize())}: {escape(spec.reference.model)} on "
                     f"{escape(spec.reference.dataset)}; quality metric: {escape(spec.metric)}. "
                     f"A result is {spec.runs} runs; the score drops the {spec.olympic_drop} fastest "
                     f"and {spec.olympic_drop} slowest.</p>")
    by_round = defaultdict(list)
    for row in rows:
        by_round[(row["scale"], row["version"], row["round"])].append(row)
    # Reference-scale rounds first; mini runs (and own runs whose scale nothing states) after
    # them, each under its own heading: one table is sorted by time, so it holds one scale.
    for key in sorted(by_round, key=lambda k: (k[0] != "reference", k[0], queries.version_key(k[1]))):
        round_rows = sorted(by_round[key], key=lambda r: (r["minutes"] is None, r["minutes"] or 0))
        heading = key[2] if key[0] == "reference" else \
            f"{key[2]}, {key[0]} scale (not comparable with published rounds)"
        parts.append(f"<h2>{escape(heading)}</h2>")
        groups = [(_name(r),
                   [run["minutes"] for run in runs[r["result_id"]] if run["minutes"] is not None],
                   r["minutes"]) for r in round_rows]
        if any(values for _, values, _ in groups):
            parts.append(f"<figure>{svg.strip_plot(groups, 'minutes to train', f'{benchmark} runs, {key[1]}')}"
                         "<figcaption>Each dot is one converged run; the black bar is the result "
                         "(olympic mean).</figcaption></figure>")
        parts.append(_table(["Submitter", "System", "Division", "Target", "Minutes", "Scored as",
                             "Runs counted", "Runs not converged", "Notes"],
                            [[r["submitter"], (_link(f"../systems/{r['system_id']}.html", r["system"]), r["system"]),
                              r["division"], _target_text(r), r["minutes"], r["score"],
                              r["runs_counted"], r["runs_failed"], r["notes"]] for r in round_rows]))
        parts.append('<h3>Convergence</h3><div class="plots">')
        for r in round_rows:
            target = queries.decode_target(r["target"])
            series = []
            for run in runs[r["result_id"]]:
                points = [(minutes, q) for _, minutes, value in run["curve"]
                          if (q := _quality(value, target)) is not None]
                series.append((f"{run['file']} (seed {run['seed']}, {run['status']})", points))
            if not any(points for _, points in series):
                continue
            target_line = _quality(target, target) if target is not None else None
            y_label = spec.metric if spec else "quality"
            plot = svg.line_plot(series, "minutes since run_start", y_label,
                                 f"{r['system']} {benchmark} convergence", target_line)
            parts.append(f"<figure>{plot}"
                         f"<figcaption>{escape(r['submitter'])} {escape(r['system'])}: quality per "
                         f"evaluation, one line per run; dashed: target"
                         f"{'' if target_line is None else ' ' + _fmt(target_line)}.</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)


def _inference_benchmark(benchmark: str, rows: list[dict]) -> str:
    parts = []
    groups = defaultdict(list)
    for row in rows:
        groups[(row["version"], row["round"], row["scenario"])].append(row)
    for key in sorted(groups, key=lambda k: (queries.version_key(k[0]), k[2])):
        group = groups[key]
        parts.append(f"<h2>{escape(key[1])}, {escape(key[2])}</h2>")
        values = [(r, *queries.inference_value(r["metric"], r["value"])) for r in group]
        # A folder holding another scenario's run has another unit: listed, not plotted.
        units = [u for r, _, u in values if not r["notes"]] or [values[0][2]]
        unit = max(set(units), key=units.count)
        plotted = [(f"{r['submitter']} {r['system']}", v) for r, v, u in values
                   if v is not None and u == unit]
        if plotted:
            parts.append(f"<figure>{svg.bar_chart(plotted, unit, f'{benchmark} {key[2]}')}</figure>")
        parts.append(_table(["Submitter", "System", "Division", unit, "Valid", "Accuracy", "Notes"],
                            [[r["submitter"], (_link(f"../systems/{r['system_id']}.html", r["system"]), r["system"]),
                              r["division"], v if u == unit else f"{_fmt(v)} {u}",
                              "yes" if r["valid"] else "no", r["accuracy"], r["notes"]]
                             for r, v, u in values]))
    return "\n".join(parts)


def _target_text(row: dict) -> str:
    return comparable.target_text(queries.decode_target(row["target"]))


def _speedup_table(system_rows: list[dict], training: list[dict], up: str) -> str:
    """Speedup of the given system over every other system, per benchmark both scored at the
    same scale and target (others are left out: their ratio would mean nothing)."""
    mine = queries.best_scores(training, system_rows)
    if not mine:
        return "<p>This system has no scored training result to compare.</p>"
    benchmarks = sorted(mine)
    own = {r["system_id"] for r in system_rows}
    others = {r["system_id"]: r for r in training if r["system_id"] not in own}
    rows = []
    for other_id, other in sorted(others.items(), key=lambda kv: (kv[1]["round"], kv[1]["system"])):
        found = {row["benchmark"]: row["speedup"] for row in
                 queries.speedups(mine, queries.best_scores(training, [other]))}
        if not found:
            continue
        mark = " (open)" if other["division"] == "open" else ""
        rows.append([other["round"], other["submitter"],
                     (_link(f"{up}systems/{other_id}.html", other["system"]) + escape(mark),
                      other["system"])]
                    + [found.get(b) for b in benchmarks])
    if not rows:
        return ("<p>No other system has scored any of the same benchmarks at the same scale "
                "and target.</p>")
    return ("<p>Speedup = the other system's minutes / this system's minutes: above 1, this system "
            "trains faster.</p>" + _table(["Round", "Submitter", "Against"] + benchmarks, rows))


def _system(row: dict, training: list[dict], inference: list[dict]) -> str:
    description = row["description"]
    parts = [f"<p>{escape(row['round'])}, {escape(row['division'])} division, "
             f"{escape(AVAILABILITY_TITLES.get(row['availability'], row['availability']))}; "
             f"folder <code>{escape(row['system'])}</code>.</p>"]
    mine_t = [r for r in training if r["system_id"] == row["system_id"]]
    mine_i = [r for r in inference if r["system_id"] == row["system_id"]]
    if mine_t:
        parts.append("<h2>Training results</h2>" + _table(
            ["Benchmark", "Scale", "Target", "Minutes", "Scored as", "Runs counted", "Runs not converged"],
            [[(_link(f"../benchmarks/{_slug('training-' + r['benchmark'])}.html", r["benchmark"]), r["benchmark"]),
              r["scale"], _target_text(r), r["minutes"], r["score"], r["runs_counted"],
              r["runs_failed"]] for r in mine_t]))
        parts.append("<h2>Compared with other systems</h2>" + _speedup_table([row], training, "../"))
    if mine_i:
        parts.append("<h2>Inference results</h2>" + _table(
            ["Benchmark", "Scenario", "Metric", "Value", "Valid", "Accuracy", "Notes"],
            [[r["benchmark"], r["scenario"], *reversed(queries.inference_value(r["metric"], r["value"])),
              "yes" if r["valid"] else "no", r["accuracy"], r["notes"]] for r in mine_i]))
    parts.append("<h2>System description</h2>" + _table(
        ["Field", "Value"], [[key, value if isinstance(value, str) else json.dumps(value)]
                             for key, value in description.items()], css="description"))
    return "\n".join(parts)


def _compare(conn, compare_system: str | None, systems: list[dict], training: list[dict]) -> str:
    if compare_system is None:
        local = [s for s in systems if s["version"] == "local" and s["kind"] == "training"]
        if not local:
            return ("<p>Choose a system to compare with every other one: "
                    "<code>mlpace report --out DIR --compare SYSTEM</code>, or from the terminal "
                    "<code>mlpace compare SYSTEM --against OTHER</code>. Each system's page also "
                    "shows its speedups.</p>")
        compare_system = local[0]["system"]
    chosen = queries.find_system(conn, compare_system)
    parts = [f"<h2>{escape(chosen[0]['system'])} ({escape(chosen[0]['submitter'])})</h2>",
             _speedup_table(chosen, training, "")]
    mine = queries.best_scores(training, chosen)
    for benchmark in sorted(mine):
        bars = [(_name(r), r["minutes"]) for r in training
                if r["benchmark"] == benchmark and r["score"] == "olympic"
                and comparable.why_not_comparable(mine[benchmark], r) is None]
        bars.sort(key=lambda item: item[1])
        parts.append(f"<figure>{svg.bar_chart(bars, 'minutes to train (lower is better)', f'{benchmark}: all systems')}"
                     f"<figcaption>{escape(benchmark)}: minutes to train of every system at the same "
                     f"scale ({escape(mine[benchmark]['scale'])}) and target "
                     f"({escape(_target_text(mine[benchmark]))}).</figcaption></figure>")
    return "\n".join(parts)


def _history(training: list[dict], inference: list[dict], progress: list[dict]) -> str:
    if not training and not inference and not progress:
        return "<p>No scored closed-division results yet.</p>"
    parts = ["<p>The best closed-division, reference-scale result per benchmark in each round, "
             "and how much better it is than in the previous round and the first round (above "
             "1: progress; only between rounds with the same target).</p>"]
    for kind, rows in (("Training", training), ("Inference", inference)):
        if not rows:
            continue
        parts.append(f"<h2>{kind}</h2>" + _table(
            ["Benchmark", "Round", "Submitter", "System", "Best", "Unit",
             "Speedup vs previous round", "Speedup vs first round"],
            [[r["benchmark"], r["round"], r["submitter"], r["system"], r["value"], r["unit"],
              r["speedup_vs_previous"], r["speedup_vs_first"]] for r in rows]))
        by_benchmark = defaultdict(list)
        for row in rows:
            by_benchmark[(row["benchmark"], row["unit"])].append((row["round"], row["value"]))
        parts.append('<div class="plots">')
        for (benchmark, unit), bars in sorted(by_benchmark.items()):
            parts.append(f"<figure>{svg.bar_chart(bars, unit, f'{benchmark} by round')}"
                         f"<figcaption>{escape(benchmark)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("<h2>Your systems over time</h2>")
    if not progress:
        parts.append("<p>No system has trained a benchmark more than once yet: every time it "
                     "does, the new result is kept beside the earlier ones and shows here.</p>")
        return "\n".join(parts)
    parts.append("<p>Every result set of each system that trained a benchmark more than once, "
                 "oldest first; speedup over its first set scored the same way (olympic or "
                 "single run).</p>")
    parts.append(_table(["Submitter", "System", "Round", "Benchmark", "Scale", "Target", "Date",
                         "Minutes", "Scored as", "Speedup vs first"],
                        [[r["submitter"], r["system"], r["round"], r["benchmark"], r["scale"],
                          _target_text(r), r["date"], r["minutes"], r["score"], r["speedup_vs_first"]]
                         for r in progress]))
    by_system = defaultdict(list)
    for row in progress:
        if row["minutes"] is not None:
            by_system[(row["submitter"], row["system"], row["benchmark"], row["scale"])].append(
                (f"{(row['date'] or '')[:16].replace('T', ' ')} ({row['score']})", row["minutes"]))
    parts.append('<div class="plots">')
    for (submitter, system, benchmark, scale), bars in by_system.items():
        title = f"{system} {benchmark} ({scale}) over time"
        parts.append(f"<figure>{svg.bar_chart(bars, 'minutes to train (lower is better)', title)}"
                     f"<figcaption>{escape(submitter)} {escape(system)}: {escape(benchmark)} at "
                     f"{escape(scale)} scale, one bar per result set, oldest first.</figcaption></figure>")
    parts.append("</div>")
    return "\n".join(parts)


def build_site(store: Store, out: str | os.PathLike, compare_system: str | None = None) -> Path:
    """Write the whole site under `out`; returns the path of index.html."""
    out = make_folder(out)
    refuse_linked_folders(out, ("assets", "benchmarks", "systems"))
    with store.read() as conn:
        training = queries.training_results(conn)
        inference = queries.inference_results(conn)
        systems = queries.systems(conn)
        runs = queries.training_runs(conn, [r["result_id"] for r in training])
        history = (queries.history(conn, "training"), queries.history(conn, "inference"),
                   queries.progress(conn))
        compare_html = _compare(conn, compare_system, systems, training)
    benchmarks = sorted({("training-" + r["benchmark"], r["benchmark"]) for r in training}) + \
        sorted({("inference-" + r["benchmark"], r["benchmark"]) for r in inference})
    nav = [(_slug(slug), name) for slug, name in benchmarks]
    written: set[str] = set()
    for name in ASSETS:
        write_atomic(out / "assets" / name,
               resources.files("mlpace.report").joinpath("assets", name).read_text(encoding="utf-8"))
    for slug, name in benchmarks:
        kind, benchmark = slug.split("-", 1)
        if kind == "training":
            body = _training_benchmark(benchmark, [r for r in training if r["benchmark"] == benchmark], runs)
        else:
            body = _inference_benchmark(benchmark, [r for r in inference if r["benchmark"] == benchmark])
        title = f"{name} ({kind})"
        written.add(f"benchmarks/{_slug(slug)}.html")
        write_atomic(out / "benchmarks" / f"{_slug(slug)}.html", _page(title, body, 1, nav))
    for row in systems:
        written.add(f"systems/{row['system_id']}.html")
        write_atomic(out / "systems" / f"{row['system_id']}.html",
               _page(f"{row['submitter']}: {row['title'] or row['system']}",
                     _system(row, training, inference), 1, nav))
    write_atomic(out / "compare.html", _page("Compare a system with the others", compare_html, 0, nav))
    write_atomic(out / "history.html", _page("Progress across rounds", _history(*history), 0, nav))
    write_atomic(out / "index.html", _page("Results by round", _index(training, inference), 0, nav))
    remove_stale_pages(out, written)
    return out / "index.html"


def remove_stale_pages(out: Path, written: set[str]) -> list[str]:
    """Remove the pages the last build listed and this one did not write; list this build's.
    Stale pages go first, the list last: interrupted, the old list still names what is left."""
    try:
        previous = read_json_limited(out / PAGES_WRITTEN)
    except (MlpaceError, ValueError):
        previous = []              # none yet (a site built before the list), or not ours
    removed = []
    for page in previous if isinstance(previous, list) else []:
        if not isinstance(page, str) or page in written or not OWN_PAGE.fullmatch(page):
            continue
        if _ours(out / page):
            (out / page).unlink()
            removed.append(page)
    write_atomic(out / PAGES_WRITTEN, json_text(sorted(written)))
    return removed


def _ours(path: Path) -> bool:
    """Is `path` a regular file (not a link) with the mark of an mlpace page in its first bytes?"""
    try:
        with open_limited(path) as f:
            return GENERATOR.encode() in f.read(512)
    except MlpaceError:          # gone, a link, a folder, a pipe: not a page of ours
        return False
