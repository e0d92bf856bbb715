"""Score a whole submission tree: the MLPerf results table, training and inference.

Training: per system and benchmark, the score in minutes as the official result summarizer
computes it (same arithmetic, so published numbers come out bit for bit), under the rules of
the round the tree belongs to (`mlpace.rules.rounds`). Unlike the official tool, summarize
does not run the compliance checker on every file - that is `mlpace check`'s job, and the
reason the official summarizer is slow - but it applies directly the compliance rules that
change a score (the official summarizer drops a run that fails compliance): the round's
limit on initialisation time, and impossible times (`_score_changing_failure`). It never
writes into the tree it reads. A result file that holds no MLPerf log at all (empty, binary,
another encoding) is reported by name, and a benchmark folder with no result file is a
result with zero runs: no score.

Inference: per system, benchmark and scenario, LoadGen's result metric and validity from
`performance/run_1/mlperf_log_summary.txt`, and the headline accuracy from
`accuracy/accuracy.txt`.

Result files are parsed in parallel worker processes when there are many of them.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlpace.words import plural
from mlpace.errors import MlpaceError
from mlpace.io import SafeTree, read_json_limited
from mlpace.submission.loadgen_log import canonical_scenario, parse_accuracy_file, parse_summary_file
from mlpace.rules.divisions import INFERENCE_DIVISION_FOLDERS
from mlpace.rules.rounds import Round, pick_round
from mlpace.rules.validity import metric_problem, time_problem
from mlpace.submission.scoring import Score, olympic_score
from mlpace.submission.training_log import TrainingRun, parse_result_file
from mlpace.submission.tree import find_org_folders

# Columns of the official training table before the per-benchmark ones (private_id left out).
SYSTEM_COLUMNS = [
    "division", "availability", "submitter", "system", "number_of_nodes",
    "host_processor_model_name", "host_processors_count", "accelerator_model_name",
    "accelerators_count", "framework", "notes",
]
INFERENCE_COLUMNS = [
    "division", "availability", "submitter", "system", "benchmark", "scenario", "metric",
    "value", "valid", "accuracy_metric", "accuracy", "notes",
]
_RESULT_FILE = re.compile(r"^result_\d+\.txt$")
# Below this many bytes of logs, starting worker processes costs more than it saves (measured
# on the busy 2-core machine: 40 MB parse in 0.29 s in one process, 0.40 s with two workers;
# 92 MB in 0.67 s both ways; 190 MB in 1.9 s against 1.5-1.75 s).
PARALLEL_MIN_BYTES = 64 * 2**20
PARALLEL_BATCH_FILES = 32


@dataclass
class TrainingResult:
    """One cell of the training table: a system's result on one benchmark."""

    org_folder: str
    system: str                   # folder name under results/
    benchmark: str
    runs: list[TrainingRun]
    folder: str = ""              # the benchmark folder holding the result files
    score: Score | None = None
    scaling_factor: float = 1.0
    minutes: float | None = None
    required_runs: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Summary:
    root: str
    round: Round | None
    training: list[TrainingResult] = field(default_factory=list)
    training_rows: list[dict] = field(default_factory=list)
    inference_rows: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)   # (path, what is wrong)

    def benchmark_columns(self) -> list[str]:
        present = {r.benchmark for r in self.training}
        listed = self.round.benchmarks() if self.round else []
        return listed + sorted(present - set(listed))

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "round": self.round.version if self.round else None,
            "ruleset": self.round.ruleset if self.round else None,
            "rules_applied": self.round.rules() if self.round else [],
            "training": self.training_rows,
            "training_details": [_result_json(r) for r in self.training],
            "inference": self.inference_rows,
            "problems": [{"path": p, "problem": m} for p, m in self.problems],
        }


def _result_json(result: TrainingResult) -> dict:
    return {
        "system": result.system, "benchmark": result.benchmark, "minutes": result.minutes,
        "scaling_factor": result.scaling_factor, "required_runs": result.required_runs,
        "score": asdict(result.score) if result.score else None, "notes": result.notes,
        "runs": [{"path": r.path, "minutes": r.minutes, "status": r.status, "seed": r.seed}
                 for r in result.runs],
    }


def parse_many(paths: list[Path], workers: int | None, all_evals: bool = True) -> list[TrainingRun]:
    """Parse result files, in worker processes when there are enough of them. `all_evals=False`:
    the scoring reader (`parse_result_file`), enough for `score_result`."""
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    parse = _parse_quietly if all_evals else _parse_for_score
    if workers <= 1 or _total_bytes(paths) < PARALLEL_MIN_BYTES:
        return [parse(p) for p in paths]
    # Small batches: log sizes vary 100-fold (a Google bert log vs an NVIDIA maskrcnn one), and
    # on a busy machine a worker that drew the big ones would leave the other idle at the end.
    chunk = max(1, min(PARALLEL_BATCH_FILES, len(paths) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(parse, paths, chunksize=chunk))


def _total_bytes(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass                    # _parse_quietly says why it cannot be read
    return total


def _parse_quietly(path: Path, all_evals: bool = True) -> TrainingRun:
    """A TrainingRun even for an unreadable file (its note says why), so one bad file never
    stops the rest of the tree from being scored."""
    try:
        return parse_result_file(path, all_evals=all_evals)
    except MlpaceError as err:
        return TrainingRun(path=str(path), notes=[f"unreadable: {err}"])


def _parse_for_score(path: Path) -> TrainingRun:
    return _parse_quietly(path, all_evals=False)


def unreadable_reason(run: TrainingRun) -> str | None:
    """Why a result file could not be read as an MLPerf log at all, or None."""
    for note in run.notes:
        if note.startswith("unreadable: "):
            return note[len("unreadable: "):]
    if run.mllog_lines == 0 and run.bad_lines == 0:
        return ("no :::MLLOG lines (the file is empty, binary or not latin-1/UTF-8 text): "
                "not an MLPerf result log")
    return None


def _load_system(tree: SafeTree, org: Path, system: str, described: list[Path]) -> dict | None:
    path = org / "systems" / f"{system}.json"
    if path not in described:
        tree.refuse(path, "missing (every system under results/ needs a description under systems/)")
        return None
    try:
        desc = read_json_limited(path)
    except MlpaceError as err:
        tree.refuse(path, str(err))
        return None
    if not isinstance(desc, dict):
        tree.refuse(path, "is not a JSON object")
        return None
    return desc


def system_columns(desc: dict, system: str) -> dict:
    """The official table's system columns from a system description (missing fields blank)."""
    def field_(name):
        value = desc.get(name, "")
        return "" if value is None else value

    def count(per_node):
        try:
            return int(desc[per_node]) * int(desc["number_of_nodes"])
        except (KeyError, TypeError, ValueError):
            return ""

    name = str(field_("system_name") or system)
    accelerator = str(field_("accelerator_model_name"))
    if name == "tpu-v3":   # the official summarizer's one special case
        try:
            name = f"TPUv3.{int(desc['accelerators_per_node']) * 2}"
        except (KeyError, TypeError, ValueError):
            pass
    if accelerator == "tpu-v3":
        accelerator = "TPUv3"
    framework = str(field_("framework"))
    if "TensorFlow" in framework:
        framework = re.sub(r" commit hash = .*", "", framework)
    return {
        "division": field_("division"), "availability": field_("status"),
        "submitter": field_("submitter"), "system": name,
        "number_of_nodes": field_("number_of_nodes"),
        "host_processor_model_name": field_("host_processor_model_name"),
        "host_processors_count": count("host_processors_per_node"),
        "accelerator_model_name": accelerator,
        "accelerators_count": count("accelerators_per_node"),
        "framework": framework,
        "notes": ";".join(str(s) for s in (field_("hw_notes"), field_("sw_notes")) if s),
    }


def _scaling_factor(tree: SafeTree, folder: Path) -> tuple[float, str]:
    path = folder / "scaling.json"
    if not tree.is_file(path):
        return 1.0, ""
    try:
        factor = float(read_json_limited(path)["scaling_factor"])
        problem = metric_problem(factor) or ("zero" if factor == 0 else None)
        if problem:
            raise ValueError(f"scaling_factor {problem}")
    except (MlpaceError, KeyError, TypeError, ValueError, OverflowError) as err:
        tree.refuse(path, f"unusable scaling.json ({err}); score not scaled")
        return 1.0, ""
    return factor, f"scaled by {factor:g} (scaling.json set by the review committee)"


def _score_changing_failure(run: TrainingRun, round_: Round, division: str) -> str | None:
    """Why a converged run fails a compliance rule that the official summarizer scores as a
    failed run, or None. These are the rules that change scores; `check` runs the rest."""
    problem = time_problem(run.run_start_ms, run.run_stop_ms)
    if problem:
        return problem
    spec = round_.closed_target(run.benchmark or "")
    if spec and (run.division or division) == "closed" and not _closed_target_reached(run, spec):
        return (f"run_stop says success but no eval_accuracy reaches the closed target "
                f"{spec.reference.target} of ruleset {round_.ruleset}")
    limit = round_.init_limit_ms(run.division or division)
    if run.init_start_ms is not None and run.init_stop_ms is not None:
        took = run.init_stop_ms - run.init_start_ms
        if not took < limit:        # the checker's test is `took < limit`
            return (f"init_start -> init_stop took {took / 60000:.1f} min; ruleset {round_.ruleset} "
                    f"allows less than {limit / 60000:g} min")
    return None


def _closed_target_reached(run: TrainingRun, spec) -> bool:
    """Whether any eval_accuracy of the run passes the closed check. The scoring reader keeps
    only the last evaluation (the one that stops a converged run), so when that one does not
    pass, every evaluation is read to decide."""
    def reached(evals) -> bool:    # from the end: the target is reached last
        return any(spec.closed_target_reached(value) for _, _, value in reversed(evals))
    if reached(run.evals) or run.all_evals:
        return reached(run.evals)
    try:
        run.evals = parse_result_file(run.path).evals
    except MlpaceError:
        return False                # gone or changed since it was read: counts as not reached
    run.all_evals = True
    return reached(run.evals)


def score_result(result: TrainingResult, round_: Round, division: str, tree: SafeTree,
                 folder: Path) -> None:
    """Fill in the score of one system x benchmark result under the round's rules."""
    drop = round_.drop(result.benchmark)
    result.required_runs = round_.required_runs(result.benchmark)
    result.folder = result.folder or str(folder)
    if result.required_runs and len(result.runs) != result.required_runs:
        result.notes.append(f"{plural(len(result.runs), 'result file')}; the round requires "
                            f"{result.required_runs} for {result.benchmark}")
    for run in result.runs:
        failure = _score_changing_failure(run, round_, division) if run.minutes is not None else None
        if failure:
            run.minutes = None
            run.notes.append(f"counts as a failed run: {failure}")
            result.notes.append(f"{Path(run.path).name} counts as a failed run: {failure}")
    result.score = olympic_score([run.minutes for run in result.runs], drop)
    failed = result.score.failed
    if result.score.minutes is None:
        result.notes.append(f"no score: {result.score.reason}")
        return
    if failed:
        result.notes.append(f"{failed} failed run(s) dropped as the slowest (olympic scoring)")
    # The one scaling the published tables apply (v2.1 on too, see mlpace.rules.rounds).
    factor, note = _scaling_factor(tree, folder)
    if note:
        result.notes.append(note)
    result.scaling_factor = factor
    result.minutes = result.score.minutes * factor if factor != 1.0 else result.score.minutes


def _inference_rows(tree: SafeTree, org: Path, system: str, benchmark_folder: Path,
                    columns: dict) -> list[dict]:
    rows = []
    for scenario_folder in tree.folders(benchmark_folder):
        scenario = canonical_scenario(scenario_folder.name)
        if scenario is None:
            continue
        row = {**{k: columns.get(k, "") for k in ("division", "availability", "submitter")},
               "system": columns.get("system") or system, "benchmark": benchmark_folder.name,
               "scenario": scenario, "metric": None, "value": None, "valid": False,
               "accuracy_metric": None, "accuracy": None, "notes": ""}
        notes = []
        perf = scenario_folder / "performance" / "run_1" / "mlperf_log_summary.txt"
        if tree.is_file(perf):
            summary = parse_summary_file(perf)
            row.update(metric=summary["metric"], value=summary["value"], valid=summary["valid"])
            problem = metric_problem(summary["value"]) if summary["metric"] else None
            if problem:
                row.update(value=None, valid=False)
                notes.append(f"impossible {summary['metric']}: {problem} (not valid)")
            if summary["scenario"] and summary["scenario"] != scenario:
                notes.append(f"folder says {scenario} but LoadGen ran {summary['scenario']}")
        else:
            notes.append("no performance/run_1/mlperf_log_summary.txt")
        accuracy = scenario_folder / "accuracy" / "accuracy.txt"
        if tree.is_file(accuracy):
            metrics = parse_accuracy_file(accuracy)["metrics"]
            if metrics:
                name = next(iter(metrics))
                problem = metric_problem(metrics[name])
                row.update(accuracy_metric=name, accuracy=None if problem else metrics[name])
                if problem:
                    notes.append(f"impossible {name}: {problem}")
        else:
            notes.append("no accuracy/accuracy.txt")
        row["notes"] = "; ".join(notes)
        rows.append(row)
    return rows


def summarize(root: str | os.PathLike, ruleset: str | None = None,
              workers: int | None = None) -> Summary:
    """Score every training and inference result under `root` (see module doc)."""
    tree = SafeTree(Path(root))
    orgs = find_org_folders(tree)
    if not orgs:
        raise MlpaceError(f"no submission under {root}: expected <org>/results/ and <org>/systems/ "
                          "folders (at the top or up to three levels down)")
    pending: list[tuple[TrainingResult, dict, Path, list[Path]]] = []
    files: list[Path] = []
    inference_rows = []
    for org in orgs:
        # Inference trees name the division by the folder above the org (closed/ open/).
        division_hint = org.parent.name if org.parent.name in INFERENCE_DIVISION_FOLDERS else ""
        described = tree.files(org / "systems")
        for system_folder in tree.folders(org / "results"):
            system = system_folder.name
            desc = _load_system(tree, org, system, described) or {}
            columns = system_columns(desc, system)
            if division_hint and not columns["division"]:
                columns["division"] = division_hint
            for benchmark_folder in tree.folders(system_folder):
                results = [p for p in tree.files(benchmark_folder) if _RESULT_FILE.match(p.name)]
                rows = [] if results else _inference_rows(tree, org, system, benchmark_folder, columns)
                if not results and not rows and division_hint:
                    tree.refuse(benchmark_folder, "no LoadGen scenario folders (SingleStream, "
                                "MultiStream, Server, Offline): no result")
                elif results or not rows:
                    # Outside an inference division folder, a folder with neither result files
                    # nor scenario folders is a training result with zero runs: it has no
                    # score (and fails `check`).
                    result = TrainingResult(str(org), system, benchmark_folder.name, runs=[],
                                            folder=str(benchmark_folder))
                    pending.append((result, columns, benchmark_folder, results))
                    files.extend(results)
                    if not results:
                        tree.refuse(benchmark_folder, "no result logs (result_<i>.txt): a benchmark "
                                    "folder with zero runs has no score")
                inference_rows.extend(rows)
    parsed = dict(zip(files, parse_many(files, workers, all_evals=False)))
    all_runs = list(parsed.values())
    round_ = pick_round(root, ruleset, [r.run_start_ms for r in all_runs]) if pending else None
    summary = Summary(str(root), round_, inference_rows=inference_rows)
    rows: dict[tuple, dict] = {}
    for result, columns, folder, paths in pending:
        result.runs = [parsed[p] for p in paths]
        for run in result.runs:
            reason = unreadable_reason(run)
            if reason:
                tree.refuse(run.path, f"unreadable: {reason}")
        for run in result.runs:
            if run.benchmark and run.benchmark != result.benchmark and \
                    not (result.benchmark == "mask" and run.benchmark == "maskrcnn"):
                result.notes.append(f"{Path(run.path).name} logs benchmark {run.benchmark!r}")
        if result.benchmark == "mask":      # the official alias
            result.benchmark = "maskrcnn"
        score_result(result, round_, str(columns["division"]), tree, folder)
        summary.training.append(result)
        key = (result.org_folder, result.system)
        row = rows.setdefault(key, {**columns})
        row[result.benchmark] = result.minutes
    for row in rows.values():
        for benchmark in summary.benchmark_columns():
            row.setdefault(benchmark, None)
    summary.training_rows = sorted(rows.values(), key=lambda r: tuple(
        str(r.get(c, "")) for c in ("division", "system", "accelerator_model_name", "framework",
                                    "accelerators_count")))
    summary.problems = tree.problems
    return summary

