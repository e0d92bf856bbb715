"""Score a whole submission tree: the MLPerf results table, training and inference.

Training: per system and benchmark, the score in minutes as the official result summarizer
computes it (same arithmetic, so published numbers come out bit for bit), under the rules of
the round the tree belongs to (`rounds.py`). Unlike the official tool, summarize does not run
the compliance checker on every file - that is `mlpace check`'s job, and the reason the
official summarizer is slow - and it never writes into the tree it reads.

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

from mlpace.errors import MlpaceError
from mlpace.submission.loadgen_log import (canonical_scenario, parse_accuracy_file,
                                           parse_summary_file, read_json_limited)
from mlpace.submission.rounds import (MLPACE_RULESET, Round, round_for_ruleset, round_from_path,
                                      round_from_time)
from mlpace.submission.scoring import Score, olympic_score
from mlpace.submission.training_log import TrainingRun, parse_result_file
from mlpace.submission.tree import SafeTree, find_org_folders

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


def parse_many(paths: list[Path], workers: int | None) -> list[TrainingRun]:
    """Parse result files, in worker processes when there are enough of them."""
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 1 or _total_bytes(paths) < PARALLEL_MIN_BYTES:
        return [_parse_quietly(p) for p in paths]
    # Small batches: log sizes vary 100-fold (a Google bert log vs an NVIDIA maskrcnn one), and
    # on a busy machine a worker that drew the big ones would leave the other idle at the end.
    chunk = max(1, min(PARALLEL_BATCH_FILES, len(paths) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_parse_quietly, paths, chunksize=chunk))


def _total_bytes(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass                    # _parse_quietly says why it cannot be read
    return total


def _parse_quietly(path: Path) -> TrainingRun:
    """A TrainingRun even for an unreadable file (its note says why), so one bad file never
    stops the rest of the tree from being scored."""
    try:
        return parse_result_file(path)
    except MlpaceError as err:
        return TrainingRun(path=str(path), notes=[f"unreadable: {err}"])


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


def pick_round(root: Path, ruleset: str | None, runs: list[TrainingRun]) -> Round:
    """The round whose rules score this tree: --ruleset, else the folder name (training_v1.0),
    else the run dates, else mlpace's own rules."""
    if ruleset:
        return round_for_ruleset(ruleset, how="given with --ruleset")
    hinted = round_from_path(str(root.resolve()))
    if hinted:
        return hinted
    starts = [r.run_start_ms for r in runs if r.run_start_ms]
    if starts:
        return round_from_time(min(starts))
    return round_for_ruleset(MLPACE_RULESET, how="no run dates in the logs: mlpace's rules")


def _scaling_factor(tree: SafeTree, folder: Path) -> tuple[float, str]:
    path = folder / "scaling.json"
    if not path.exists():
        return 1.0, ""
    try:
        factor = float(read_json_limited(path)["scaling_factor"])
    except (MlpaceError, KeyError, TypeError, ValueError) as err:
        tree.refuse(path, f"unusable scaling.json ({err}); score not scaled")
        return 1.0, ""
    return factor, f"scaled by {factor:g} (scaling.json set by the review committee)"


def _rcp_factor(folder: Path, ruleset: str) -> tuple[float, str]:
    """RCP normalisation factor of a closed-division result (rounds v2.1 on)."""
    import contextlib
    import io
    import logging

    from mlperf_logging.rcp_checker import rcp_checker
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            passed, message, factor = rcp_checker.check_directory(
                str(folder), "training", ruleset, False, False, rcp_pass="pruned_rcps",
                set_scaling=False)
    except KeyError as err:
        return 1.0, f"RCP normalisation not applied: mlperf-logging has no RCPs for {err} in {ruleset}"
    except Exception as err:  # noqa: BLE001 - the official checker fails in many ways on odd trees
        return 1.0, f"RCP normalisation not applied: the RCP checker failed ({err})"
    finally:
        logging.disable(logging.NOTSET)
    if not passed:
        return 1.0, f"RCP check failed ({message}); score not normalised"
    if factor != 1.0:
        return factor, f"RCP normalised by {factor:.4f} ({message})"
    return 1.0, ""


def score_result(result: TrainingResult, round_: Round, division: str, tree: SafeTree,
                 folder: Path) -> None:
    """Fill in the score of one system x benchmark result under the round's rules."""
    drop = round_.drop(result.benchmark)
    result.required_runs = round_.required_runs(result.benchmark)
    minutes = [run.minutes for run in result.runs]
    if result.required_runs and len(result.runs) != result.required_runs:
        result.notes.append(f"{len(result.runs)} result files; the round requires "
                            f"{result.required_runs} for {result.benchmark}")
    result.score = olympic_score(minutes, drop)
    failed = result.score.failed
    if result.score.minutes is None:
        result.notes.append(f"no score: {result.score.reason}")
        return
    if failed:
        result.notes.append(f"{failed} non-converged run(s) dropped as the slowest (olympic scoring)")
    factor, note = _scaling_factor(tree, folder)
    if note:
        # The official pipeline stores the RCP factor of v2.1 on in this same file, so a
        # present scaling.json is the whole scaling: never apply the RCP factor on top of it.
        result.notes.append(note)
    elif round_.rcp_normalisation and division == "closed" and result.benchmark != "minigo":
        factor, rcp_note = _rcp_factor(folder, round_.ruleset)
        if rcp_note:
            result.notes.append(rcp_note)
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
        if perf.parent.is_dir() and perf in tree.files(perf.parent):
            summary = parse_summary_file(perf)
            row.update(metric=summary["metric"], value=summary["value"], valid=summary["valid"])
            if summary["scenario"] and summary["scenario"] != scenario:
                notes.append(f"folder says {scenario} but LoadGen ran {summary['scenario']}")
        else:
            notes.append("no performance/run_1/mlperf_log_summary.txt")
        accuracy = scenario_folder / "accuracy" / "accuracy.txt"
        if accuracy.parent.is_dir() and accuracy in tree.files(accuracy.parent):
            metrics = parse_accuracy_file(accuracy)["metrics"]
            if metrics:
                name = next(iter(metrics))
                row.update(accuracy_metric=name, accuracy=metrics[name])
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
        division_hint = org.parent.name if org.parent.name in ("closed", "open", "network") else ""
        described = tree.files(org / "systems")
        for system_folder in tree.folders(org / "results"):
            system = system_folder.name
            desc = _load_system(tree, org, system, described) or {}
            columns = system_columns(desc, system)
            if division_hint and not columns["division"]:
                columns["division"] = division_hint
            for benchmark_folder in tree.folders(system_folder):
                results = [p for p in tree.files(benchmark_folder) if _RESULT_FILE.match(p.name)]
                if results:
                    result = TrainingResult(str(org), system, benchmark_folder.name, runs=[])
                    pending.append((result, columns, benchmark_folder, results))
                    files.extend(results)
                else:
                    inference_rows.extend(_inference_rows(tree, org, system, benchmark_folder, columns))
    parsed = dict(zip(files, parse_many(files, workers)))
    all_runs = list(parsed.values())
    round_ = pick_round(Path(root), ruleset, all_runs) if pending else None
    summary = Summary(str(root), round_, inference_rows=inference_rows)
    rows: dict[tuple, dict] = {}
    for result, columns, folder, paths in pending:
        result.runs = [parsed[p] for p in paths]
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


# Earlier private names, still imported by mlpace.results.importers.
_parse_many = parse_many
_system_columns = system_columns
