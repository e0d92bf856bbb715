"""Read the results store: filtered result rows, runs, systems, comparisons, history.

Every function takes an open connection (`Store.read()`) and returns plain dicts, so the CLI
prints them and the report renders them without knowing the schema.

A system may hold several result sets for one benchmark (it trained again): queries give the
latest one (by date, then by import) unless asked for `every` one. A training row's `score`
says what its `minutes` are: "olympic" (the MLPerf score), "single run" (the time-to-train of
a result set of one converged run: shown, but never an olympic score), or "none". Ratios are
only ever taken between olympic scores that `comparable.why_not_comparable` allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import func, select

from mlpace.errors import MlpaceError
from mlpace.results import comparable
from mlpace.results import schema as s


@dataclass
class Filters:
    """Each field, when set, keeps only matching rows (case-insensitive; system, submitter and
    accelerator match a substring)."""

    round: str | None = None
    division: str | None = None
    availability: str | None = None
    benchmark: str | None = None
    system: str | None = None
    submitter: str | None = None
    accelerator: str | None = None
    scenario: str | None = None


def _system_columns(division=s.systems.c.division) -> list:
    """The columns of a result's system; `division` is the result's own where there is one."""
    return [s.rounds.c.name.label("round"), s.rounds.c.kind, s.rounds.c.version,
            s.submitters.c.name.label("submitter"), s.systems.c.id.label("system_id"),
            s.systems.c.name.label("system"), s.systems.c.title, division.label("division"),
            s.systems.c.availability, s.systems.c.nodes, s.systems.c.processor,
            s.systems.c.processor_count, s.systems.c.accelerator,
            s.systems.c.accelerator_count, s.systems.c.framework]


def _where(query, filters: Filters, table=None):
    lower = func.lower
    exact = {"round": s.rounds.c.name, "division": s.systems.c.division,
             "availability": s.systems.c.availability}
    if table is not None:
        exact["division"] = table.c.division
        exact["benchmark"] = table.c.benchmark
        if "scenario" in table.c:
            exact["scenario"] = table.c.scenario
    for name, column in exact.items():
        value = getattr(filters, name)
        if name == "availability" and value:
            value = s.AVAILABILITY.get(value.lower(), value)     # onprem, cloud -> available
        if value:
            query = query.where(lower(column) == value.lower())
    like = {"system": s.systems.c.name, "submitter": s.submitters.c.name,
            "accelerator": s.systems.c.accelerator}
    for name, column in like.items():
        value = getattr(filters, name)
        if value:
            query = query.where(lower(column).contains(value.lower(), autoescape=True))
    return query


def _systems_join():
    return s.systems.join(s.rounds).join(s.submitters)


def _results(conn, table, columns: list, filters: Filters | None, join=None) -> list[dict]:
    """Rows of a results table joined with their system, round and submitter, filtered."""
    query = select(*_system_columns(table.c.division), table.c.id.label("result_id"), *columns) \
        .select_from(join if join is not None else _systems_join().join(table))
    query = _where(query, filters or Filters(), table)
    return [dict(row._mapping) for row in conn.execute(query)]


def _latest(rows: list[dict], key) -> list[dict]:
    """Only each system's latest result set per `key` (a trained-again result hides the
    earlier one): the latest date, then the last imported."""
    latest: dict = {}
    for row in rows:
        k = (row["system_id"], key(row))
        rank = (row.get("date") or "", row["result_id"])
        if k not in latest or rank > latest[k][0]:
            latest[k] = (rank, row["result_id"])
    keep = {result_id for _, result_id in latest.values()}
    return [row for row in rows if row["result_id"] in keep]


def training_results(conn, filters: Filters | None = None, every: bool = False) -> list[dict]:
    """One row per training result (a system's score on one benchmark), best first; only
    each system's latest result set per benchmark unless `every`."""
    t, r = s.training_results, s.training_runs
    runs = (select(r.c.result_id, func.count().label("runs"), func.count(r.c.minutes).label("converged"),
                   func.min(r.c.minutes).label("fastest")).group_by(r.c.result_id).subquery())
    rows = _results(conn, t, [t.c.benchmark, t.c.scale, t.c.metric, t.c.target, t.c.minutes,
                              t.c.runs_counted, t.c.runs_failed, t.c.notes,
                              t.c.run_date.label("date"), t.c.config, runs.c.runs,
                              runs.c.converged, runs.c.fastest], filters,
                    join=_systems_join().join(t).outerjoin(runs, runs.c.result_id == t.c.id))
    for row in rows:
        runs_made, converged, fastest = row.pop("runs"), row.pop("converged"), row.pop("fastest")
        if row["minutes"] is not None:
            row["score"] = "olympic"
        elif runs_made == 1 and converged == 1:
            row["score"], row["minutes"] = "single run", fastest
        else:
            row["score"] = "none"
    # Sorted here, not by the database: the order must not depend on a server's collation.
    rows.sort(key=lambda r: (r["round"], r["benchmark"], r["minutes"] is None, r["minutes"] or 0,
                             r["system"], r["date"] or "", r["result_id"]))
    return rows if every else _latest(rows, lambda row: row["benchmark"])


def inference_results(conn, filters: Filters | None = None, every: bool = False) -> list[dict]:
    """One row per inference result (system, benchmark, scenario); only each system's latest
    result per benchmark and scenario unless `every`."""
    t = s.inference_results
    rows = _results(conn, t, [t.c.benchmark, t.c.scenario, t.c.scale, t.c.metric, t.c.value,
                              t.c.valid, t.c.accuracy, t.c.notes], filters)
    rows.sort(key=lambda r: (r["round"], r["benchmark"], r["scenario"], r["submitter"],
                             r["system"], r["result_id"]))
    return rows if every else _latest(rows, lambda row: (row["benchmark"], row["scenario"]))


def systems(conn, filters: Filters | None = None) -> list[dict]:
    """Every system row, with its full description decoded."""
    query = _where(select(*_system_columns(), s.systems.c.description).select_from(_systems_join()),
                   filters or Filters())
    rows = []
    for row in conn.execute(query):
        row = dict(row._mapping)
        row["description"] = json.loads(row["description"])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["round"], r["submitter"], r["system"]))


def training_runs(conn, result_ids: list[int]) -> dict[int, list[dict]]:
    """{result_id: [run, ...]} with each run's curve decoded."""
    if not result_ids:
        return {}
    t = s.training_runs
    runs: dict[int, list[dict]] = {rid: [] for rid in result_ids}
    for row in conn.execute(select(t).where(t.c.result_id.in_(result_ids))):
        row = dict(row._mapping)
        row["curve"] = json.loads(row["curve"])
        runs[row["result_id"]].append(row)
    for result_runs in runs.values():      # in Python: the order must not depend on a collation
        result_runs.sort(key=lambda run: (run["file"], run["id"]))
    return runs


def find_system(conn, name: str) -> list[dict]:
    """Systems whose folder name is `name` (exactly; else the unique one containing it)."""
    rows = systems(conn)
    exact = [r for r in rows if r["system"] == name]
    if exact:
        return exact
    partial = [r for r in rows if name.lower() in r["system"].lower()]
    if not partial:
        raise MlpaceError(f"no system named {name!r} in the results store (see `mlpace results`)")
    names = sorted({r["system"] for r in partial})
    if len(names) > 1:
        raise MlpaceError(f"{name!r} matches several systems: {', '.join(names)}; give the full name")
    return partial


def compare(conn, system: str, against: list[str], benchmark: str | None = None) -> list[dict]:
    """Speedup of `system` over each of `against`, per training benchmark both have scored
    (olympic scores of each system's latest result sets; only `benchmark` when given).

    speedup = other's minutes / this system's minutes (> 1: this system is faster). A pair
    reached at different scales or against different targets is refused (MlpaceError): the
    ratio would mean nothing.
    """
    results = training_results(conn, Filters(benchmark=benchmark))
    mine = best_scores(results, find_system(conn, system))
    rows = []
    for other_name in against:
        theirs = best_scores(results, find_system(conn, other_name))
        for name in sorted(set(mine) & set(theirs)):
            why = comparable.why_not_comparable(mine[name], theirs[name])
            if why:
                raise MlpaceError(f"cannot compare {why}")
        rows += speedups(mine, theirs)
    if not rows:
        raise MlpaceError(f"{system} and {', '.join(against)} have no scored training benchmark "
                          "in common" + (f" ({benchmark})" if benchmark else ""))
    return rows


def speedups(mine: dict[str, dict], theirs: dict[str, dict]) -> list[dict]:
    """Per benchmark both scored comparably: speedup = their minutes / my minutes (> 1: mine
    is faster). Pairs that `why_not_comparable` refuses are left out."""
    rows = []
    for benchmark in sorted(set(mine) & set(theirs)):
        a, b = mine[benchmark], theirs[benchmark]
        if comparable.why_not_comparable(a, b):
            continue
        rows.append({"benchmark": benchmark, "scale": a["scale"],
                     "target": comparable.target_text(decode_target(a["target"])),
                     "system": a["system"], "division": a["division"], "minutes": a["minutes"],
                     "against": b["system"], "against_division": b["division"],
                     "against_minutes": b["minutes"],
                     "speedup": b["minutes"] / a["minutes"] if a["minutes"] else None})
    return rows


def best_scores(results: list[dict], system_rows: list[dict]) -> dict[str, dict]:
    """{benchmark: best olympic score} among `results` of the given system rows."""
    ids = {r["system_id"] for r in system_rows}
    best: dict[str, dict] = {}
    for row in results:
        if row["system_id"] in ids and row["score"] == "olympic":
            if row["benchmark"] not in best or row["minutes"] < best[row["benchmark"]]["minutes"]:
                best[row["benchmark"]] = row
    return best


def inference_value(metric: str, value) -> tuple[float | None, str]:
    """A LoadGen metric in display units: latencies in ms, throughputs as logged (per second)."""
    if value is None:
        return None, metric
    if "(ns)" in metric.lower():
        return value / 1e6, re.sub(r"\s*\(ns\)", "", metric) + " (ms)"
    return float(value), metric


def _lower_is_better(unit: str) -> bool:
    return unit == "minutes" or "latency" in unit.lower()


def history(conn, kind: str = "training", filters: Filters | None = None) -> list[dict]:
    """The best closed-division, reference-scale result per benchmark (inference: per benchmark
    and scenario) in each round, with the speedup over the previous round that has it and over
    the first one.

    Training: lowest olympic score; a speedup is only taken between rounds with the same
    target (a round whose target is not known stands alone). Inference: valid results without
    notes (a folder that holds another scenario's run); highest throughput or lowest latency.
    A speedup above 1 is progress either way. Mini-scale results are no round's: see
    `progress`.
    """
    filters = filters or Filters(division="closed")
    best: dict[tuple, dict] = {}
    if kind == "training":
        scored = [(r["benchmark"], r["target"], r, r["minutes"], "minutes")
                  for r in training_results(conn, filters)
                  if r["score"] == "olympic" and r["scale"] == "reference"]
    else:
        scored = [(f"{r['benchmark']} {r['scenario']}", None, r,
                   *inference_value(r["metric"], r["value"]))
                  for r in inference_results(conn, filters)
                  if r["valid"] and not r["notes"] and r["scale"] == "reference"]
    for name, target, row, value, unit in scored:
        if value is None:
            continue
        lower = _lower_is_better(unit)
        key = (name, target, row["round"])
        if key not in best or (value < best[key]["value"] if lower else value > best[key]["value"]):
            best[key] = {"benchmark": name, "round": row["round"], "version": row["version"],
                         "system": row["system"], "submitter": row["submitter"], "value": value,
                         "unit": unit, "target": target}
    rows = []
    for name, target in sorted({(b, t) for b, t, _ in best}, key=lambda k: (k[0], str(k[1]))):
        per_round = sorted((r for (b, t, _), r in best.items() if (b, t) == (name, target)),
                           key=lambda r: version_key(r["version"]))
        first = per_round[0]["value"]
        for i, row in enumerate(per_round):
            previous = per_round[i - 1]["value"]
            ratio = (lambda old, new: old / new) if _lower_is_better(row["unit"]) else \
                (lambda old, new: new / old)
            rows.append({**row, "speedup_vs_previous": ratio(previous, row["value"]) if i else None,
                         "speedup_vs_first": ratio(first, row["value"]) if i else None})
    return rows


def progress(conn, filters: Filters | None = None) -> list[dict]:
    """A system's own progress: every system that has more than one result set for a
    benchmark (at one scale and target), oldest first, each with its speedup over the first
    set scored the same way (olympic over olympic, single run over single run)."""
    groups: dict[tuple, list[dict]] = {}
    for row in training_results(conn, filters, every=True):
        key = (row["system_id"], row["benchmark"], row["scale"], row["target"])
        groups.setdefault(key, []).append(row)
    rows = []
    for key in sorted(groups, key=lambda k: (groups[k][0]["submitter"], groups[k][0]["system"], k[1], k[2])):
        sets = sorted(groups[key], key=lambda r: (r["date"] or "", r["result_id"]))
        if len(sets) < 2:
            continue
        first: dict[str, float] = {}
        for row in sets:
            if row["minutes"] is not None:
                first.setdefault(row["score"], row["minutes"])
            base = first.get(row["score"])
            rows.append({**row, "speedup_vs_first": base / row["minutes"]
                         if row["minutes"] and base is not None else None})
    return rows


def decode_target(text: str | None):
    """A stored quality target (JSON: a number, or {metric: number} for maskrcnn)."""
    return json.loads(text) if text else None


def version_key(version: str) -> tuple:
    """Numeric round versions in order; non-numeric ones ("local") after them."""
    try:
        return (0, tuple(int(p) for p in version.split(".")))
    except ValueError:
        return (1, (version,))
