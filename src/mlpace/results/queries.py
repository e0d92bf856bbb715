"""Read the results store: filtered result rows, runs, systems, comparisons, history.

Every function takes an open connection (`Store.read()`) and returns plain dicts, so the CLI
prints them and the report renders them without knowing the schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import func, select

from mlpace.errors import MlpaceError
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


SYSTEM_COLUMNS = [s.rounds.c.name.label("round"), s.rounds.c.kind, s.rounds.c.version,
                  s.submitters.c.name.label("submitter"), s.systems.c.id.label("system_id"),
                  s.systems.c.name.label("system"), s.systems.c.title, s.systems.c.division,
                  s.systems.c.availability, s.systems.c.nodes, s.systems.c.processor,
                  s.systems.c.processor_count, s.systems.c.accelerator,
                  s.systems.c.accelerator_count, s.systems.c.framework]


def _where(query, filters: Filters, table=None):
    lower = func.lower
    exact = {"round": s.rounds.c.name, "division": s.systems.c.division,
             "availability": s.systems.c.availability}
    if table is not None:
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


def _results(conn, table, columns: list, filters: Filters | None, order: list) -> list[dict]:
    """Rows of a results table joined with their system, round and submitter, filtered."""
    query = select(*SYSTEM_COLUMNS, table.c.id.label("result_id"), *columns) \
        .select_from(_systems_join().join(table))
    query = _where(query, filters or Filters(), table).order_by(*order)
    return [dict(row._mapping) for row in conn.execute(query)]


def training_results(conn, filters: Filters | None = None) -> list[dict]:
    """One row per training result (a system's score on one benchmark), best first."""
    t = s.training_results
    return _results(conn, t, [t.c.benchmark, t.c.minutes, t.c.runs_counted, t.c.runs_failed,
                              t.c.notes, t.c.target], filters,
                    [s.rounds.c.name, t.c.benchmark, t.c.minutes.is_(None), t.c.minutes])


def inference_results(conn, filters: Filters | None = None) -> list[dict]:
    """One row per inference result (system, benchmark, scenario)."""
    t = s.inference_results
    return _results(conn, t, [t.c.benchmark, t.c.scenario, t.c.metric, t.c.value, t.c.valid,
                              t.c.accuracy, t.c.notes], filters,
                    [s.rounds.c.name, t.c.benchmark, t.c.scenario, s.submitters.c.name,
                     s.systems.c.name])


def systems(conn, filters: Filters | None = None) -> list[dict]:
    """Every system row, with its full description decoded."""
    query = _where(select(*SYSTEM_COLUMNS, s.systems.c.description).select_from(_systems_join()),
                   filters or Filters())
    rows = []
    for row in conn.execute(query.order_by(s.rounds.c.name, s.submitters.c.name, s.systems.c.name)):
        row = dict(row._mapping)
        row["description"] = json.loads(row["description"])
        rows.append(row)
    return rows


def training_runs(conn, result_ids: list[int]) -> dict[int, list[dict]]:
    """{result_id: [run, ...]} with each run's curve decoded."""
    if not result_ids:
        return {}
    t = s.training_runs
    runs: dict[int, list[dict]] = {rid: [] for rid in result_ids}
    query = select(t).where(t.c.result_id.in_(result_ids)).order_by(t.c.result_id, t.c.file)
    for row in conn.execute(query):
        row = dict(row._mapping)
        row["curve"] = json.loads(row["curve"])
        runs[row["result_id"]].append(row)
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


def compare(conn, system: str, against: list[str]) -> list[dict]:
    """Speedup of `system` over each of `against`, per training benchmark both have scored.

    speedup = other's minutes / this system's minutes (> 1: this system is faster).
    """
    mine = best_scores(training_results(conn), find_system(conn, system))
    rows = []
    for other_name in against:
        rows += speedups(mine, best_scores(training_results(conn), find_system(conn, other_name)))
    if not rows:
        raise MlpaceError(f"{system} and {', '.join(against)} have no scored training benchmark "
                          "in common")
    return rows


def speedups(mine: dict[str, dict], theirs: dict[str, dict]) -> list[dict]:
    """Per benchmark both scored: speedup = their minutes / my minutes (> 1: mine is faster)."""
    rows = []
    for benchmark in sorted(set(mine) & set(theirs)):
        a, b = mine[benchmark], theirs[benchmark]
        rows.append({"benchmark": benchmark, "system": a["system"], "minutes": a["minutes"],
                     "against": b["system"], "against_minutes": b["minutes"],
                     "speedup": b["minutes"] / a["minutes"] if a["minutes"] else None})
    return rows


def best_scores(results: list[dict], system_rows: list[dict]) -> dict[str, dict]:
    """{benchmark: best scored result} among `results` of the given system rows."""
    ids = {r["system_id"] for r in system_rows}
    best: dict[str, dict] = {}
    for row in results:
        if row["system_id"] in ids and row["minutes"] is not None:
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
    """The best closed-division result per benchmark (inference: per benchmark and scenario) in
    each round, with the speedup over the previous round that has it and over the first one.

    Training: lowest minutes. Inference: valid results without notes (a folder that holds
    another scenario's run); highest throughput or lowest latency. A speedup above 1 is
    progress either way.
    """
    filters = filters or Filters(division="closed")
    best: dict[tuple[str, str], dict] = {}
    if kind == "training":
        scored = [(r["benchmark"], r, r["minutes"], "minutes") for r in training_results(conn, filters)]
    else:
        scored = [(f"{r['benchmark']} {r['scenario']}", r, *inference_value(r["metric"], r["value"]))
                  for r in inference_results(conn, filters) if r["valid"] and not r["notes"]]
    for name, row, value, unit in scored:
        if value is None:
            continue
        lower = _lower_is_better(unit)
        key = (name, row["round"])
        if key not in best or (value < best[key]["value"] if lower else value > best[key]["value"]):
            best[key] = {"benchmark": name, "round": row["round"], "version": row["version"],
                         "system": row["system"], "submitter": row["submitter"], "value": value,
                         "unit": unit}
    rows = []
    for name in sorted({b for b, _ in best}):
        per_round = sorted((r for (b, _), r in best.items() if b == name),
                           key=lambda r: version_key(r["version"]))
        first = per_round[0]["value"]
        for i, row in enumerate(per_round):
            previous = per_round[i - 1]["value"]
            ratio = (lambda old, new: old / new) if _lower_is_better(row["unit"]) else \
                (lambda old, new: new / old)
            rows.append({**row, "speedup_vs_previous": ratio(previous, row["value"]) if i else None,
                         "speedup_vs_first": ratio(first, row["value"]) if i else None})
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
