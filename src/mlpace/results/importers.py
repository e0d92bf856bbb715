"""Import submission trees (mlpace's own and published MLPerf rounds) into the results store.

Layouts (the official ones, which mlpace writes too):
- training:  `<org>/results/<system>/<benchmark>/result_<i>.txt` + `<org>/systems/<system>.json`
- inference: `<division>/<org>/results/<system>/<benchmark>/<scenario>/performance/run_<n>/
  mlperf_log_summary.txt` and `.../<scenario>/accuracy/accuracy.txt`

The unit of import is a *submission*: one `<org>` folder of one round. For each one:
1. every result folder is hashed (its files' names and bytes), unless the store already holds
   the hash of files with the very same stamp (`folder_stamp`: names, sizes, modification
   and change times, inodes): re-importing an unchanged round then reads no file at all;
2. only folders whose hash the store does not already hold are parsed and scored, with the
   submission module's parsers (`training_log`, `loadgen_log`) and its scoring under the
   round's rules (`summarize.score_result`: olympic mean, scaling.json, RCP from v2.1 on);
   a file that is not a usable log fails the whole submission, naming the file and why,
   before anything is written (the new training logs of every submission given are parsed
   together, in worker processes when they add up to enough bytes);
3. one transaction writes the submission: all of it lands or none of it. A result whose hash
   is already stored for its system and benchmark is left alone (importing twice adds
   nothing); a result with other files (the benchmark trained again) is added beside the
   earlier ones, which are kept: the store holds a system's whole history. The transaction
   re-checks hashes, so two imports running at once lose nothing and double nothing (see
   `store.Store.write`).

Each result is stored with the facts that say what its number may be compared with (scale,
metric, target, division: `comparable.py`), its date, and mlpace's resolved config when the
folder has one (`mlpace_config.json`; `score.json` declares the scale).

No torch here: this runs on a machine with no ML stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, insert, select, update

from mlpace.errors import MlpaceError
from mlpace.results import comparable
from mlpace.results import schema as s
from mlpace.results.store import Store, StoreError
from mlpace.submission import loadgen_log
from mlpace.rules.divisions import INFERENCE_DIVISION_FOLDERS
from mlpace.rules.rounds import Round, pick_round
from mlpace.rules.validity import metric_problem
from mlpace.submission.summarize import TrainingResult, parse_many, score_result
from mlpace.submission.summarize import system_columns
from mlpace.submission.training_log import TrainingRun
from mlpace.io import SafeTree, read_bytes_limited, read_json_limited
from mlpace.submission.tree import find_org_folders

DIVISIONS = set(INFERENCE_DIVISION_FOLDERS)
ROUND_FOLDER = re.compile(r"^(training|inference)(?:_results)?[_-]v?(\d+(?:\.\d+)*)$", re.I)
RESULT_FILE = re.compile(r"^result_\d+\.txt$")
# Files mlpace writes beside its logs: read for the facts they hold, not part of the hash.
TRAINING_EXTRAS = ("score.json", "mlpace_config.json")
INFERENCE_EXTRAS = ("mlpace_summary.json",)


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
    extras: dict[str, Path] = field(default_factory=dict)   # mlpace's own notes, by file name
    content_hash: str = ""
    stamp: str | None = None      # folder_stamp, taken before hashing
    parsed: object = None         # filled in only when the store lacks this hash
    facts: dict = field(default_factory=dict)               # scale, metric, target, ...

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
                extras = {p.name: p for p in files if p.name in TRAINING_EXTRAS}
                # scaling.json (set by the review committee) changes the score: hash it too.
                files = [p for p in files if RESULT_FILE.match(p.name) or p.name == "scaling.json"]
                found.append(ResultFolder(system_dir.name, bench_dir.name, None, bench_dir, files,
                                          extras))
                continue
            for scenario_dir in tree.folders(bench_dir):
                files, extras = _loadgen_files(tree, scenario_dir)
                if files:
                    kinds.add("inference")
                    scenario = loadgen_log.canonical_scenario(scenario_dir.name) or scenario_dir.name
                    found.append(ResultFolder(system_dir.name, bench_dir.name, scenario,
                                              scenario_dir, files, extras))
    if len(kinds) > 1:
        raise ImportFailure(results_dir, "holds both training logs and LoadGen results")
    return (kinds.pop() if kinds else None), found


def _loadgen_files(tree: SafeTree, scenario_dir: Path) -> tuple[list[Path], dict[str, Path]]:
    """performance/run_<n>/mlperf_log_summary.txt and accuracy/accuracy.txt of one scenario,
    and mlpace's own notes of its first performance run."""
    files, extras = [], {}
    for part in tree.folders(scenario_dir):
        if part.name == "performance":
            for run_dir in tree.folders(part):
                for path in tree.files(run_dir):
                    if path.name == "mlperf_log_summary.txt":
                        files.append(path)
                    elif path.name in INFERENCE_EXTRAS:
                        extras.setdefault(path.name, path)
        elif part.name == "accuracy":
            files += [p for p in tree.files(part) if p.name == "accuracy.txt"]
    return sorted(files), extras


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

def folder_stamp(folder: Path, files: list[Path]) -> str | None:
    """What the files look like from outside: names, sizes, mtime, ctime, inode and device;
    None when one cannot be looked at (hashing will say why). Any write to a file changes
    its ctime, which no tool can set back (`touch -d`, `cp -p` and rsync set mtime only), so
    files with the stamp of hashed ones hold the same bytes - short of a changed system clock
    or a write to the raw device, which is the trade-off for not reading them again."""
    digest, skip = hashlib.sha256(), len(str(folder)) + 1
    try:
        for path in files:
            st = os.stat(path, follow_symlinks=False)
            digest.update(f"{str(path)[skip:]}\0{st.st_size} {st.st_mtime_ns} "
                          f"{st.st_ctime_ns} {st.st_ino} {st.st_dev}\0".encode())
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def _known_hashes(conn, stamps: list[str]) -> dict[str, str]:
    """{stamp: content hash} of the stamps the store has seen."""
    known = {}
    for start in range(0, len(stamps), 500):      # bound the statement's parameters
        part = stamps[start:start + 500]
        known.update(conn.execute(select(s.file_stamps.c.stamp, s.file_stamps.c.content_hash)
                                  .where(s.file_stamps.c.stamp.in_(part))).all())
    return known


def _record_stamps(conn, results: list[ResultFolder]) -> None:
    """Store the stamps of these results' files beside their content hashes."""
    stamps = {r.stamp: r.content_hash for r in results if r.stamp}
    for start in range(0, len(stamps), 500):
        part = list(stamps)[start:start + 500]
        have = set(conn.execute(select(s.file_stamps.c.stamp)
                                .where(s.file_stamps.c.stamp.in_(part))).scalars())
        rows = [{"stamp": k, "content_hash": stamps[k]} for k in part if k not in have]
        if rows:
            conn.execute(insert(s.file_stamps), rows)


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
    named = None if sub.round_version == "local" else sub.round_version
    return pick_round(sub.root, None, [run.run_start_ms for run in runs], named=named)


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
        if metric_problem(summary["value"]):
            raise ImportFailure(path, f"impossible {summary['metric']}: {metric_problem(summary['value'])}")
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


# Built once: SQLAlchemy works a join's condition out anew each time one is made.
_SYSTEMS = s.systems.join(s.rounds).join(s.submitters)
_TRAINING = _SYSTEMS.join(s.training_results)
_INFERENCE = _SYSTEMS.join(s.inference_results)


def _stored_hashes(conn, sub: Submission) -> set[tuple]:
    """{(system, benchmark, scenario, hash)} already in the store for this submission."""
    where = and_(s.rounds.c.name == sub.round_name, s.submitters.c.name == sub.submitter)
    if sub.kind == "training":
        rows = conn.execute(select(s.systems.c.name, s.training_results.c.benchmark,
                                   s.training_results.c.content_hash)
                            .select_from(_TRAINING).where(where))
        return {(name, bench, None, h) for name, bench, h in rows}
    rows = conn.execute(select(s.systems.c.name, s.inference_results.c.benchmark,
                               s.inference_results.c.scenario, s.inference_results.c.content_hash)
                        .select_from(_INFERENCE).where(where))
    return {tuple(row) for row in rows}


def _extra_json(result: ResultFolder, name: str) -> dict:
    """One of mlpace's own JSON notes beside the logs; {} when absent."""
    path = result.extras.get(name)
    if path is None:
        return {}
    data = read_json_limited(path)
    if not isinstance(data, dict):
        raise ImportFailure(path, "must be a JSON object")
    return data


def _training_facts(sub: Submission, result: ResultFolder, division: str) -> dict:
    """Scale, metric, target, division, date and config of a parsed training result."""
    runs = result.parsed.runs
    score = _extra_json(result, "score.json")
    logged = next((run.target for run in runs if run.target is not None), score.get("target"))
    target = comparable.training_target(result.benchmark, sub.round_version, logged)
    config = _extra_json(result, "mlpace_config.json")
    return {"scale": comparable.training_scale(result.benchmark, sub.round_version, target,
                                               score.get("scale")),
            "metric": comparable.metric_of(result.benchmark), "target": json.dumps(target),
            "division": division,
            "run_date": comparable.run_date(min((run.run_start_ms for run in runs
                                                 if run.run_start_ms is not None), default=None)),
            "config": json.dumps(config, sort_keys=True) if config else None}


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


def _stored_systems(conn, sub: Submission) -> dict[str, dict]:
    """{system name: its stored row (the columns system_row gives)} for this submission."""
    columns = [s.systems.c[name] for name in SYSTEM_COLUMNS]
    rows = conn.execute(select(s.systems.c.name, *columns).select_from(_SYSTEMS)
                        .where(s.rounds.c.name == sub.round_name,
                               s.submitters.c.name == sub.submitter))
    return {row[0]: dict(zip(SYSTEM_COLUMNS, row[1:])) for row in rows}


def find_new(store: Store, sub: Submission) -> tuple[dict[str, dict], list[ResultFolder] | None]:
    """Hash every result: (the system descriptions, the results the store lacks), or None
    for the results when the store holds all of it already (every result, stamp and system
    row): then there is nothing to write. Writes nothing."""
    descriptions = _read_descriptions(sub)
    for result in sub.results:
        result.stamp = folder_stamp(result.folder, result.files)
    with store.read() as conn:            # one connection for the three look-ups
        stored = _stored_hashes(conn, sub)
        known = _known_hashes(conn, [r.stamp for r in sub.results if r.stamp])
        systems = _stored_systems(conn, sub)
    for result in sub.results:
        result.content_hash = known.get(result.stamp) or _hash_files(result.folder, result.files)
    new = [r for r in sub.results
           if (r.system, r.benchmark, r.scenario, r.content_hash) not in stored]
    if not new and all(r.stamp in known for r in sub.results) and \
            all(systems.get(name) == system_row(description, sub.division)
                for name, description in descriptions.items()):
        return descriptions, None
    return descriptions, new


def score_new(sub: Submission, descriptions: dict[str, dict], new: list[ResultFolder],
              parsed: dict[Path, TrainingRun]) -> None:
    """Score the results the store lacks (their training logs parsed already: `parsed`)."""
    if sub.kind == "training":
        runs_parsed = [parsed[path] for r in new for path in r.logs]
        for run in runs_parsed:
            _check_training_run(run)
        rules = _scoring_round(sub, runs_parsed)
        runs = iter(runs_parsed)
        for result in new:
            scored = TrainingResult(str(sub.root), result.system, result.benchmark,
                                    runs=[next(runs) for _ in result.logs])
            division = system_row(descriptions[result.system], sub.division)["division"]
            score_result(scored, rules, division, sub.tree, result.folder)
            result.parsed = scored
            result.facts = _training_facts(sub, result, division)
    else:
        for result in new:
            result.parsed = _parse_inference(result)
            declared = _extra_json(result, "mlpace_summary.json").get("scale")
            result.facts = {
                "scale": comparable.inference_scale(sub.round_version, declared),
                "division": system_row(descriptions[result.system], sub.division)["division"]}


# ---------------------------------------------------------------- writing

def _int(text) -> int | None:
    match = re.match(r"\s*(\d+)", str(text or ""))
    return int(match.group(1)) if match else None


def _fitting(table, row: dict, where: Path | str) -> dict:
    """`row`, once every text is known to fit its column: PostgreSQL refuses a longer one where
    SQLite would keep it, and both back ends must answer alike (and in one clear line)."""
    for name, value in row.items():
        length = getattr(table.c[name].type, "length", None)
        if length and isinstance(value, str) and len(value) > length:
            raise ImportFailure(where, f"{table.name}.{name} {value[:40]!r}... has {len(value)} "
                                f"characters; the store keeps at most {length}")
    return row


def _get_or_create(conn, table, key: dict, values: dict | None, where: Path | str) -> int:
    _fitting(table, {**key, **(values or {})}, where)
    where = and_(*(table.c[name] == value for name, value in key.items()))
    found = conn.execute(select(table.c.id).where(where)).scalar()
    if found is not None:
        return found
    return conn.execute(insert(table).values(**key, **(values or {}))).inserted_primary_key[0]


SYSTEM_COLUMNS = ("title", "division", "availability", "nodes", "processor", "processor_count",
                  "accelerator", "accelerator_count", "framework", "description")


def system_row(description: dict, division: str | None) -> dict:
    """A system's row in the store, from its description (as the official table shows it)."""
    official = system_columns(description, "")
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


def _write_training(conn, system_id: int, result: ResultFolder, source: str) -> int:
    scored: TrainingResult = result.parsed
    runs = scored.runs
    result_id = conn.execute(insert(s.training_results).values(**_fitting(s.training_results, dict(
        system_id=system_id, benchmark=result.benchmark, minutes=scored.minutes,
        runs_counted=scored.score.counted, runs_failed=scored.score.failed,
        notes="; ".join(scored.notes), content_hash=result.content_hash, source=source,
        **result.facts), result.folder))).inserted_primary_key[0]
    conn.execute(insert(s.training_runs), [_fitting(s.training_runs, {
        "result_id": result_id, "file": Path(run.path).name, "seed": run.seed,
        "status": run.status, "minutes": run.minutes, "global_batch_size": run.global_batch_size,
        "run_start_ms": run.run_start_ms, "run_stop_ms": run.run_stop_ms,
        "curve": json.dumps(_curve(run))}, run.path) for run in runs])
    return len(runs)


def _accuracy_text(accuracy: dict | None) -> str | None:
    if not accuracy or not accuracy.get("metrics"):
        return None
    return ", ".join(f"{name}={value:g}" for name, value in accuracy["metrics"].items())


def _write_inference(conn, system_id: int, result: ResultFolder, source: str) -> int:
    first = result.parsed["runs"][0]
    value = first["value"]
    conn.execute(insert(s.inference_results).values(**_fitting(s.inference_results, dict(
        system_id=system_id, benchmark=result.benchmark, scenario=result.scenario,
        metric=str(first["metric"]), value=value if isinstance(value, (int, float)) else None,
        valid=all(run["valid"] for run in result.parsed["runs"]),
        accuracy=_accuracy_text(result.parsed["accuracy"]), notes="; ".join(result.parsed["notes"]),
        details=json.dumps(result.parsed, sort_keys=True, default=str),
        content_hash=result.content_hash, source=source, **result.facts), result.folder)))
    return len(result.parsed["runs"])


def write_submission(conn, sub: Submission, descriptions: dict[str, dict]) -> dict:
    """Store one prepared submission (call inside one transaction); returns counts."""
    counts = {"added": 0, "unchanged": 0, "runs": 0}
    round_id = _get_or_create(conn, s.rounds, {"name": sub.round_name},
                              {"kind": sub.kind, "version": sub.round_version}, sub.root)
    submitter_id = _get_or_create(conn, s.submitters, {"name": sub.submitter}, None, sub.root)
    system_ids = {}
    for name, description in descriptions.items():
        columns = system_row(description, sub.division)
        key = {"round_id": round_id, "submitter_id": submitter_id, "name": name}
        system_id = _get_or_create(conn, s.systems, key, columns,
                                   sub.root / "systems" / f"{name}.json")
        conn.execute(update(s.systems).where(s.systems.c.id == system_id).values(**columns))
        system_ids[name] = system_id
    _record_stamps(conn, sub.results)
    table = s.training_results if sub.kind == "training" else s.inference_results
    for result in sub.results:
        where = [table.c.system_id == system_ids[result.system], table.c.benchmark == result.benchmark,
                 table.c.content_hash == result.content_hash]
        if sub.kind == "inference":
            where.append(table.c.scenario == result.scenario)
        if conn.execute(select(table.c.id).where(*where)).first() is not None:
            counts["unchanged"] += 1           # these very files are stored already
            continue
        if result.parsed is None:
            # Stored when prepared, gone now: nothing deletes results, so this cannot happen
            # unless someone edits the database by hand. Never store an unparsed result.
            raise MlpaceError(f"{result.folder}: its stored result vanished during the import; "
                              "import again")
        counts["added"] += 1
        writer = _write_training if sub.kind == "training" else _write_inference
        counts["runs"] += writer(conn, system_ids[result.system], result, str(result.folder))
    return counts


def import_trees(store: Store, paths: list[str | os.PathLike], round_name: str | None = None,
                 on_submission=None) -> ImportReport:
    """Import every submission under `paths`; a failed submission is reported, not half-stored.

    `on_submission(submission, counts_or_error)` is called after each one (for progress).
    A store that cannot be reached any more (StoreError) ends the import: the submissions
    stored before it stay, complete; the one being written was rolled back.
    """
    report = ImportReport()
    subs = find_submissions(paths, round_name, report.problems)
    # Every submission is hashed first, and the new training logs of all of them are parsed
    # together: a round is dozens of organisations, each too small on its own for the worker
    # processes of parse_many, together hundreds of MB.
    found: list[tuple | MlpaceError] = []
    for sub in subs:
        try:
            found.append(find_new(store, sub))
        except StoreError:
            raise
        except MlpaceError as err:
            found.append(err)
    logs = [path for sub, got in zip(subs, found) if sub.kind == "training"
            and isinstance(got, tuple) and got[1] for result in got[1] for path in result.logs]
    parsed = dict(zip(logs, parse_many(logs, None)))
    for sub, got in zip(subs, found):
        try:
            if isinstance(got, MlpaceError):
                raise got
            descriptions, new = got
            if new is None:
                counts = {"added": 0, "unchanged": len(sub.results), "runs": 0}
            else:
                score_new(sub, descriptions, new, parsed)
                counts = store.write(write_submission, sub, descriptions)
        except StoreError:
            raise
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
