"""Import submission trees (mlpace's own and published MLPerf rounds) into the results store.

Layouts (the official ones, which mlpace writes too):
- training:  `<org>/results/<system>/<benchmark>/result_<i>.txt` + `<org>/systems/<system>.json`
- inference: `<division>/<org>/results/<system>/<benchmark>/<scenario>/performance/run_<n>/
  mlperf_log_summary.txt` and `.../<scenario>/accuracy/accuracy.txt`

The unit of import is a *submission*: one `<org>` folder of one round. For each one:
1. every result folder is hashed (its files' names and bytes);
2. only folders whose hash the store does not already hold are parsed and scored, with the
   submission module's parsers (`training_log`, `loadgen_log`) and its scoring under the
   round's rules (`summarize.score_result`: olympic mean, scaling.json, RCP from v2.1 on);
   a file that is not a usable log fails the whole submission, naming the file and why,
   before anything is written;
3. one transaction writes the submission: all of it lands or none of it. A result whose hash
   is already stored is left alone (importing twice adds nothing); one whose files changed is
   replaced. The transaction re-checks hashes, so two imports running at once lose nothing and
   double nothing (see `store.Store.write`).

No torch here: this runs on a machine with no ML stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, delete, insert, select, update

from mlpace.errors import MlpaceError
from mlpace.results import schema as s
from mlpace.results.store import Store
from mlpace.rules.benchmarks import BENCHMARKS
from mlpace.submission import loadgen_log
from mlpace.submission.rounds import Round, round_for_ruleset, round_from_path, round_from_time
from mlpace.submission.summarize import TrainingResult, parse_many, score_result
from mlpace.submission.summarize import system_columns as official_system_columns
from mlpace.submission.training_log import TrainingRun
from mlpace.io import SafeTree, read_bytes_limited, read_json_limited
from mlpace.submission.tree import find_org_folders

DIVISIONS = {"closed", "open", "network"}
ROUND_FOLDER = re.compile(r"^(training|inference)(?:_results)?[_-]v?(\d+(?:\.\d+)*)$", re.I)
RESULT_FILE = re.compile(r"^result_\d+\.txt$")


class ImportFailure(MlpaceError):
    """A file that makes its submission unimportable."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class ResultFolder:
    """One result in the tree: a training benchmark, or an inference benchmark + scenario."""

    system: str
    benchmark: str
    scenario: str | None          # None for training
    folder: Path
    files: list[Path]             # what the content hash covers
    content_hash: str = ""
    parsed: object = None         # filled in only when the store lacks this hash

    @property
    def logs(self) -> list[Path]:
        return [p for p in self.files if RESULT_FILE.match(p.name)]


@dataclass
class Submission:
    root: Path                    # the <org> folder
    kind: str                     # training | inference
    round_name: str
    round_version: str
    submitter: str
    division: str | None          # from the path (inference), else from each description
    results: list[ResultFolder] = field(default_factory=list)
    tree: SafeTree | None = None  # the walker that found it (reads scaling.json safely)

    @property
    def label(self) -> str:
        return f"{self.submitter} ({self.round_name}, {self.root})"


@dataclass
class ImportReport:
    submissions: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    runs: int = 0
    failures: list[str] = field(default_factory=list)     # submissions not imported, and why
    problems: list[str] = field(default_factory=list)     # files skipped by the tree walker

    def merge(self, counts: dict) -> None:
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + value)


# ---------------------------------------------------------------- finding submissions

def _round_of(folder: Path, kind: str, round_name: str | None) -> tuple[str, str]:
    """(round name, version): given, else from a `training_v1.0`-like folder above, else local."""
    if round_name:
        match = re.search(r"(\d+(?:\.\d+)*)", round_name)
        return round_name, match.group(1) if match else round_name
    for part in reversed(folder.resolve().parts):
        match = ROUND_FOLDER.match(part)
        if match and match.group(1).lower() == kind:
            return f"{kind} v{match.group(2)}", match.group(2)
    return f"{kind} local", "local"


def _scan_results(tree: SafeTree, results_dir: Path) -> tuple[str | None, list[ResultFolder]]:
    """The kind of a `results/` folder and its result folders (sorted, for stable hashes)."""
    found: list[ResultFolder] = []
    kinds = set()
    for system_dir in tree.folders(results_dir):
        for bench_dir in tree.folders(system_dir):
            files = tree.files(bench_dir)
            if any(RESULT_FILE.match(p.name) for p in files):
                kinds.add("training")
                # scaling.json (set by the review committee) changes the score: hash it too.
                files = [p for p in files if RESULT_FILE.match(p.name) or p.name == "scaling.json"]
                found.append(ResultFolder(system_dir.name, bench_dir.name, None, bench_dir, files))
                continue
            for scenario_dir in tree.folders(bench_dir):
                files = _loadgen_files(tree, scenario_dir)
                if files:
                    kinds.add("inference")
                    scenario = loadgen_log.canonical_scenario(scenario_dir.name) or scenario_dir.name
                    found.append(ResultFolder(system_dir.name, bench_dir.name, scenario,
                                              scenario_dir, files))
    if len(kinds) > 1:
        raise ImportFailure(results_dir, "holds both training logs and LoadGen results")
    return (kinds.pop() if kinds else None), found


def _loadgen_files(tree: SafeTree, scenario_dir: Path) -> list[Path]:
    """performance/run_<n>/mlperf_log_summary.txt and accuracy/accuracy.txt of one scenario."""
    files = []
    for part in tree.folders(scenario_dir):
        if part.name == "performance":
            for run_dir in tree.folders(part):
                files += [p for p in tree.files(run_dir) if p.name == "mlperf_log_summary.txt"]
        elif part.name == "accuracy":
            files += [p for p in tree.files(part) if p.name == "accuracy.txt"]
    return sorted(files)


def find_submissions(paths: list[str | os.PathLike], round_name: str | None = None,
                     problems: list[str] | None = None) -> list[Submission]:
    """Every organisation folder (`<org>/results` + `<org>/systems`) under the given folders.

    Files the tree walker refuses (links out of the tree, unsafe names, absurd sizes) are
    skipped and described in `problems`.
    """
    submissions = []
    for given in paths:
        tree = SafeTree(Path(given))
        before = len(submissions)
        for org in find_org_folders(tree, depth=4):
            kind, results = _scan_results(tree, org / "results")
            if not kind:
                continue
            name, version = _round_of(org, kind, round_name)
            parent = org.resolve().parent.name.lower()
            submissions.append(Submission(
                org, kind, name, version, org.resolve().name,
                parent if kind == "inference" and parent in DIVISIONS else None, results, tree))
        if problems is not None:
            problems += [f"{path}: {reason}" for path, reason in tree.problems]
        if len(submissions) == before:
            raise MlpaceError(f"no results found under {given} (expected <org>/results/<system>/"
                              "<benchmark>/result_<i>.txt or LoadGen summaries, and <org>/systems/)")
    return submissions


# ---------------------------------------------------------------- hashing and parsing

def _hash_files(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        try:
            digest.update(read_bytes_limited(path))
        except MlpaceError as err:
            raise ImportFailure(path, f"cannot read: {err}") from None
        digest.update(b"\0")
    return digest.hexdigest()


def _check_training_run(run: TrainingRun) -> None:
    unreadable = [note for note in run.notes if note.startswith("unreadable")]
    if unreadable:
        raise ImportFailure(run.path, unreadable[0])
    if run.mllog_lines == 0:
        raise ImportFailure(run.path, "no :::MLLOG lines; not an MLPerf training result log")
    if run.run_start_ms is None:
        raise ImportFailure(run.path, "no run_start event; the log cannot be timed")


def _scoring_round(sub: Submission, runs: list[TrainingRun]) -> Round:
    """The rules to score under: the round's own when known, else mlpace's (by run dates)."""
    if sub.round_version != "local":
        try:
            return round_for_ruleset(sub.round_version, how=f"round {sub.round_name}")
        except MlpaceError:
            pass
    hinted = round_from_path(str(sub.root.resolve()))
    if hinted:
        return hinted
    starts = [run.run_start_ms for run in runs if run.run_start_ms]
    return round_from_time(min(starts)) if starts else round_for_ruleset("1.1", how="default")


def _parse_inference(result: ResultFolder) -> dict:
    performance = sorted(p for p in result.files
                         if p.name == "mlperf_log_summary.txt" and p.parent.name.startswith("run_")
                         and p.parent.parent.name == "performance")
    if not performance:
        raise ImportFailure(result.folder, "no performance/run_<n>/mlperf_log_summary.txt")
    runs = []
    for path in performance:
        summary = loadgen_log.parse_summary_file(path)
        if not loadgen_log.is_performance_summary(summary):
            raise ImportFailure(path, "not a LoadGen performance summary (no Scenario or "
                                "'Result is' line)")
        summary["path"] = str(path.relative_to(result.folder))
        summary["latency_percentiles_ns"] = {str(k): v for k, v in
                                             summary["latency_percentiles_ns"].items()}
        runs.append(summary)
    ran = runs[0]["scenario"]
    # Real submissions have folders holding another scenario's run (Krai v1.1 offline/).
    notes = [] if ran == result.scenario else [f"folder says {result.scenario} but LoadGen ran {ran}"]
    accuracy_file = result.folder / "accuracy" / "accuracy.txt"
    accuracy = loadgen_log.parse_accuracy_file(accuracy_file) if accuracy_file in result.files else None
    if accuracy:
        accuracy["path"] = str(accuracy_file.relative_to(result.folder))
    return {"runs": runs, "accuracy": accuracy, "notes": notes}


def _stored_hashes(store: Store, sub: Submission) -> dict[tuple, str]:
    """{(system, benchmark, scenario): hash} already in the store for this submission."""
    with store.read() as conn:
        join = s.systems.join(s.rounds).join(s.submitters)
        where = and_(s.rounds.c.name == sub.round_name, s.submitters.c.name == sub.submitter)
        if sub.kind == "training":
            rows = conn.execute(select(s.systems.c.name, s.training_results.c.benchmark,
                                       s.training_results.c.content_hash)
                                .select_from(join.join(s.training_results)).where(where))
            return {(name, bench, None): h for name, bench, h in rows}
        rows = conn.execute(select(s.systems.c.name, s.inference_results.c.benchmark,
                                   s.inference_results.c.scenario, s.inference_results.c.content_hash)
                            .select_from(join.join(s.inference_results)).where(where))
        return {(name, bench, scen): h for name, bench, scen, h in rows}


def _read_descriptions(sub: Submission) -> dict[str, dict]:
    descriptions = {}
    for system in sorted({r.system for r in sub.results}):
        path = sub.root / "systems" / f"{system}.json"
        if not sub.tree.is_file(path):
            raise ImportFailure(path, "missing: every results/<system> needs its system description")
        description = read_json_limited(path)
        if not isinstance(description, dict):
            raise ImportFailure(path, "a system description must be a JSON object")
        descriptions[system] = description
    return descriptions


def prepare(store: Store, sub: Submission) -> dict[str, dict]:
    """Hash every result, parse the new ones; returns the system descriptions. Writes nothing."""
    descriptions = _read_descriptions(sub)
    stored = _stored_hashes(store, sub)
    for result in sub.results:
        result.content_hash = _hash_files(result.folder, result.files)
    new = [r for r in sub.results
           if stored.get((r.system, r.benchmark, r.scenario)) != r.content_hash]
    if sub.kind == "training":
        parsed = parse_many([path for r in new for path in r.logs], None)
        for run in parsed:
            _check_training_run(run)
        rules = _scoring_round(sub, parsed)
        runs = iter(parsed)
        for result in new:
            scored = TrainingResult(str(sub.root), result.system, result.benchmark,
                                    runs=[next(runs) for _ in result.logs])
            division = system_columns(descriptions[result.system], sub.division)["division"]
            score_result(scored, rules, division, sub.tree, result.folder)
            result.parsed = scored
    else:
        for result in new:
            result.parsed = _parse_inference(result)
    return descriptions


# ---------------------------------------------------------------- writing

def _int(text) -> int | None:
    match = re.match(r"\s*(\d+)", str(text or ""))
    return int(match.group(1)) if match else None


def _get_or_create(conn, table, key: dict, values: dict | None = None) -> int:
    where = and_(*(table.c[name] == value for name, value in key.items()))
    found = conn.execute(select(table.c.id).where(where)).scalar()
    if found is not None:
        return found
    return conn.execute(insert(table).values(**key, **(values or {}))).inserted_primary_key[0]


def system_columns(description: dict, division: str | None) -> dict:
    """A system's row in the store, from its description (as the official table shows it)."""
    official = official_system_columns(description, "")
    status = str(official["availability"]).strip().lower()
    return {
        "title": str(official["system"]),
        "division": str(division or official["division"] or "unknown").lower(),
        "availability": s.AVAILABILITY.get(status, status or "unknown"),
        "nodes": _int(official["number_of_nodes"]),
        "processor": str(official["host_processor_model_name"]),
        "processor_count": _int(official["host_processors_count"]),
        "accelerator": "" if official["accelerator_model_name"] in ("-", "N/A", "n/a", "none")
        else str(official["accelerator_model_name"]),
        "accelerator_count": _int(official["accelerators_count"]),
        "framework": str(official["framework"]),
        "description": json.dumps(description),          # in the order the submitter wrote it
    }


def _curve(run: TrainingRun) -> list:
    """[[epoch, minutes since run_start, quality], ...] up to run_stop."""
    if run.run_start_ms is None:
        return []
    stop = run.run_stop_ms if run.run_stop_ms is not None else float("inf")
    return [[epoch, (t - run.run_start_ms) / 60000.0, value]
            for epoch, t, value in run.evals if t <= stop]


def _target(benchmark: str, runs: list[TrainingRun]):
    """The quality target: as a log states it, else the benchmark's reference target."""
    for run in runs:
        if run.target is not None:
            return run.target
    spec = BENCHMARKS.get(benchmark)
    return spec.reference.target if spec else None


def _write_training(conn, system_id: int, result: ResultFolder, source: str) -> int:
    scored: TrainingResult = result.parsed
    runs = scored.runs
    result_id = conn.execute(insert(s.training_results).values(
        system_id=system_id, benchmark=result.benchmark, minutes=scored.minutes,
        runs_counted=scored.score.counted, runs_failed=scored.score.failed,
        notes="; ".join(scored.notes),
        target=json.dumps(_target(result.benchmark, runs)),
        content_hash=result.content_hash, source=source)).inserted_primary_key[0]
    conn.execute(insert(s.training_runs), [{
        "result_id": result_id, "file": Path(run.path).name, "seed": run.seed,
        "status": run.status, "minutes": run.minutes, "global_batch_size": run.global_batch_size,
        "run_start_ms": run.run_start_ms, "run_stop_ms": run.run_stop_ms,
        "curve": json.dumps(_curve(run))} for run in runs])
    return len(runs)


def _accuracy_text(accuracy: dict | None) -> str | None:
    if not accuracy or not accuracy.get("metrics"):
        return None
    return ", ".join(f"{name}={value:g}" for name, value in accuracy["metrics"].items())


def _write_inference(conn, system_id: int, result: ResultFolder, source: str) -> int:
    first = result.parsed["runs"][0]
    value = first["value"]
    conn.execute(insert(s.inference_results).values(
        system_id=system_id, benchmark=result.benchmark, scenario=result.scenario,
        metric=str(first["metric"]), value=value if isinstance(value, (int, float)) else None,
        valid=all(run["valid"] for run in result.parsed["runs"]),
        accuracy=_accuracy_text(result.parsed["accuracy"]), notes="; ".join(result.parsed["notes"]),
        details=json.dumps(result.parsed, sort_keys=True, default=str),
        content_hash=result.content_hash, source=source))
    return len(result.parsed["runs"])


def write_submission(conn, sub: Submission, descriptions: dict[str, dict]) -> dict:
    """Store one prepared submission (call inside one transaction); returns counts."""
    counts = {"added": 0, "replaced": 0, "unchanged": 0, "runs": 0}
    round_id = _get_or_create(conn, s.rounds, {"name": sub.round_name},
                              {"kind": sub.kind, "version": sub.round_version})
    submitter_id = _get_or_create(conn, s.submitters, {"name": sub.submitter})
    system_ids = {}
    for name, description in descriptions.items():
        columns = system_columns(description, sub.division)
        key = {"round_id": round_id, "submitter_id": submitter_id, "name": name}
        system_id = _get_or_create(conn, s.systems, key, columns)
        conn.execute(update(s.systems).where(s.systems.c.id == system_id).values(**columns))
        system_ids[name] = system_id
    table = s.training_results if sub.kind == "training" else s.inference_results
    for result in sub.results:
        where = [table.c.system_id == system_ids[result.system], table.c.benchmark == result.benchmark]
        if sub.kind == "inference":
            where.append(table.c.scenario == result.scenario)
        existing = conn.execute(select(table.c.id, table.c.content_hash).where(*where)).first()
        if existing and existing.content_hash == result.content_hash:
            counts["unchanged"] += 1
            continue
        if result.parsed is None:
            # Hash matched when prepared but another import changed it since: its data wins.
            counts["unchanged"] += 1
            continue
        if existing:
            if sub.kind == "training":
                conn.execute(delete(s.training_runs).where(s.training_runs.c.result_id == existing.id))
            conn.execute(delete(table).where(table.c.id == existing.id))
            counts["replaced"] += 1
        else:
            counts["added"] += 1
        writer = _write_training if sub.kind == "training" else _write_inference
        counts["runs"] += writer(conn, system_ids[result.system], result, str(result.folder))
    return counts


def import_trees(store: Store, paths: list[str | os.PathLike], round_name: str | None = None,
                 on_submission=None) -> ImportReport:
    """Import every submission under `paths`; a failed submission is reported, not half-stored.

    `on_submission(submission, counts_or_error)` is called after each one (for progress).
    """
    report = ImportReport()
    for sub in find_submissions(paths, round_name, report.problems):
        try:
            descriptions = prepare(store, sub)
            counts = store.write(write_submission, sub, descriptions)
        except MlpaceError as err:
            report.failures.append(f"{sub.submitter} not imported: {err}")
            if on_submission:
                on_submission(sub, err)
            continue
        report.submissions += 1
        report.merge(counts)
        if on_submission:
            on_submission(sub, counts)
    return report
