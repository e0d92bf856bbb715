"""Package `mlpace infer` output as an MLPerf Inference v1.1 submission, in the layout the
official v1.1 submission checker reads:

    <division>/<org>/results/<system>/<model>/<scenario>/performance/run_1/
        mlperf_log_summary.txt, mlperf_log_detail.txt
    <division>/<org>/results/<system>/<model>/<scenario>/accuracy/
        mlperf_log_summary.txt, mlperf_log_detail.txt, accuracy.txt (+ hash=), mlperf_log_accuracy.json (truncated)
    <division>/<org>/measurements/<system>/<model>/<scenario>/
        mlperf.conf, user.conf, README.md (the exact `mlpace infer` command), <system>.json (implementation)
    <division>/<org>/compliance/<system>/<model>/<scenario>/TEST01|TEST04-A|TEST04-B|TEST05/...
        (copied when the run folder holds the audits `mlpace infer --submission` writes)
    <division>/<org>/systems/<system>.json    (v1.1 fields; status in the v1.1 vocabulary)
    <division>/<org>/code/<model>/README.md

Only the files the official layout names are copied: mlpace's own `mlpace_summary.json` stays
in the run folder, and so does the full `mlperf_log_accuracy.json` (the packaged one is
truncated to its first and last 4 KiB with the full file's hash in accuracy.txt, as the
official `truncate_accuracy_log.py` does).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.rules import inference as rules
from mlpace.rules.divisions import require_division_allowed
from mlpace.io import SafeTree, read_json_limited, refuse_colliding
from mlpace.submission.loadgen_log import canonical_scenario
from mlpace.submission.sysinfo import capture_system_description

COMPLIANCE_FILES = ("verify_performance.txt", "verify_accuracy.txt")
COMPLIANCE_ACCURACY_FILES = ("mlperf_log_accuracy.json", "accuracy.txt", "baseline_accuracy.txt",
                             "compliance_accuracy.txt")
_HASH_LINE = re.compile(rules.HASH_PATTERN, re.M)


def truncate_accuracy_log(data: bytes) -> bytes:
    """What truncate_accuracy_log.py leaves of a large accuracy log: its start and its end."""
    if len(data) <= rules.MAX_ACCURACY_LOG_BYTES:
        return data
    keep = rules.ACCURACY_LOG_KEEP_BYTES
    return data[:keep] + b"\n\n...\n\n" + data[-keep:]


def with_hash(accuracy_text: str, log: bytes) -> str:
    """accuracy.txt with one `hash=` line: the sha256 of the full accuracy log."""
    kept = [line for line in accuracy_text.splitlines() if not _HASH_LINE.match(line)]
    return "\n".join(kept + [f"hash={hashlib.sha256(log).hexdigest()}"]) + "\n"


def run_record(tree: SafeTree, scenario_folder: Path) -> dict:
    """mlpace's own summary of a run (`mlpace_summary.json`), performance run first; {} if none."""
    for folder in (scenario_folder / "performance" / "run_1", scenario_folder / "accuracy"):
        path = folder / "mlpace_summary.json"
        if tree.is_file(path):
            record = read_json_limited(path)
            if isinstance(record, dict):
                return record
    return {}


def system_description(tree: SafeTree, source_org: Path, system: str, org: str, division: str,
                       status: str, system_type: str | None, overrides: dict) -> tuple[dict, list[str]]:
    """The v1.1 description of `system`, and what is wrong with it (missing or empty fields)."""
    path = source_org / "systems" / f"{system}.json"
    desc = read_json_limited(path) if tree.is_file(path) else capture_system_description(system_name=system)
    if not isinstance(desc, dict):
        return {}, [f"{path}: not a JSON object"]
    desc.update(overrides)
    desc.update({"submitter": org, "division": division, "status": status})
    if system_type:
        desc["system_type"] = system_type
    known = set(rules.SYSTEM_REQUIRED_FIELDS) | set(rules.SYSTEM_POWER_FIELDS)
    desc = {key: value for key, value in desc.items() if key in known}    # training-only fields
    problems = []
    empty = [f for f in rules.SYSTEM_REQUIRED_FIELDS
             if f != "system_type" and desc.get(f) in (None, "", [], {})]
    if not desc.get("system_type"):
        problems.append(f"systems/{system}.json: no system_type; pass --system-type "
                        f"{'|'.join(rules.SYSTEM_TYPES[:3])}")
    if empty:
        problems.append(f"systems/{system}.json: {', '.join(empty)} missing or empty; give them in "
                        "--system-desc FILE (start from `mlpace sysinfo --out FILE`)")
    if desc.get("system_type") and desc["system_type"] not in rules.SYSTEM_TYPES:
        problems.append(f"systems/{system}.json: system_type {desc['system_type']!r} is not one of "
                        f"{', '.join(rules.SYSTEM_TYPES)}")
    return desc, problems


def implementation_description(record: dict) -> dict:
    """measurements/.../<system>.json: how the model was obtained and run (SYSTEM_IMP fields)."""
    build = record.get("build") or {}
    checkpoint = build.get("checkpoint")
    trained_here = build.get("scale", "mini") == "mini" and not checkpoint
    backend = build.get("backend", "torch")
    return {
        "input_data_types": "fp32",
        "weight_data_types": build.get("precision", "fp32"),
        "retraining": "yes: the mini model is trained by mlpace on its generated data set" if trained_here
        else "no",
        "starting_weights_filename": Path(checkpoint).name if checkpoint else "none (trained by mlpace)",
        "weight_transformations": {"onnxruntime": "exported to ONNX"}.get(backend, "none"),
        "backend": backend, "device": build.get("device", "cpu"),
    }


def measurement_readme(model: str, scenario: str, system: str, record: dict) -> str:
    command = record.get("command")
    reproduce = (["```", command, "```"] if command else
                 ["No `mlpace infer` record (mlpace_summary.json) was found beside this result, "
                  "so the command that made it is not known."])
    return "\n".join([f"# {model} {scenario} on {system}: mlpace", "",
                      "Measured with the official LoadGen through `mlpace infer`; the settings "
                      "LoadGen used are in mlperf.conf and user.conf beside this file.", "",
                      "## Reproduce", "", *reproduce, ""])


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _copy_accuracy(tree: SafeTree, src: Path, dst: Path, names) -> None:
    """Copy an accuracy folder's official files, the log truncated and hashed."""
    present = {p.name: p for p in tree.files(src)}
    for name in names:
        if name in present and name not in ("mlperf_log_accuracy.json", "accuracy.txt"):
            _copy(present[name], dst / name)
    if "mlperf_log_accuracy.json" in present:
        log = present["mlperf_log_accuracy.json"].read_bytes()
        text = present["accuracy.txt"].read_text(encoding="utf-8") if "accuracy.txt" in present else ""
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "accuracy.txt").write_text(with_hash(text, log), encoding="utf-8")
        (dst / "mlperf_log_accuracy.json").write_bytes(truncate_accuracy_log(log))
    elif "accuracy.txt" in present:
        _copy(present["accuracy.txt"], dst / "accuracy.txt")


def _copy_performance(tree: SafeTree, src: Path, dst: Path) -> None:
    present = {p.name: p for p in tree.files(src)}
    for name in rules.PERFORMANCE_FILES:
        if name in present:
            _copy(present[name], dst / name)


def _copy_compliance(tree: SafeTree, src: Path, dst: Path) -> None:
    for test in tree.folders(src):
        if test.name not in rules.COMPLIANCE_TESTS:
            continue
        present = {p.name: p for p in tree.files(test)}
        for name in COMPLIANCE_FILES:
            if name in present:
                _copy(present[name], dst / test.name / name)
        if tree.is_folder(test / "performance" / "run_1"):
            _copy_performance(tree, test / "performance" / "run_1", dst / test.name / "performance" / "run_1")
        if tree.is_folder(test / "accuracy"):
            _copy_accuracy(tree, test / "accuracy", dst / test.name / "accuracy", COMPLIANCE_ACCURACY_FILES)


def scenario_folders(tree: SafeTree, source_org: Path):
    """(system, model, scenario, folder) of every result under an `mlpace infer` org folder."""
    for system in tree.folders(source_org / "results"):
        for model in tree.folders(system):
            # `Offline` and `offline` would land in one folder: refuse rather than mix them
            refuse_colliding(tree.relative(model), [f.name for f in tree.folders(model)], canonical_scenario)
            for folder in tree.folders(model):
                scenario = canonical_scenario(folder.name)
                if scenario:
                    yield system.name, model.name, scenario, folder


def source_problems(source_org: Path, division: str) -> list[str]:
    """Why the results under `source_org` may not be packaged for `division` (mini is open only)."""
    tree = SafeTree(source_org)
    problems = []
    for system, model, scenario, folder in scenario_folders(tree, source_org):
        record = run_record(tree, folder)
        where = f"{system}/{model}/{scenario}"
        scale = record.get("scale") or (record.get("build") or {}).get("scale")
        try:
            require_division_allowed(scale or "reference", division)
        except MlpaceError as err:
            problems.append(f"{where}: {err}")
        if model not in rules.MODELS and division == "closed":
            problems.append(f"{where}: {model!r} is not an MLPerf Inference v1.1 model "
                            f"({', '.join(rules.MODELS)}); closed results must use one")
    problems += [f"{tree.relative(p)}: {why}" for p, why in tree.problems]
    return problems


def write_inference(target: Path, source_org: Path, org: str, division: str, status: str,
                    system_type: str | None, overrides: dict) -> list[str]:
    """Write one org's inference submission under `target` (<out>/<division>/<org>); returns
    the problems that forbid it (the caller then discards the staged tree)."""
    tree = SafeTree(source_org)
    problems = []
    systems_done = set()
    for system, model, scenario, folder in scenario_folders(tree, source_org):
        if system not in systems_done:
            systems_done.add(system)
            desc, wrong = system_description(tree, source_org, system, org, division, status, system_type,
                                             overrides)
            problems += wrong
            _write_text(target / "systems" / f"{system}.json", json.dumps(desc, indent=2) + "\n")
        record = run_record(tree, folder)
        results = target / "results" / system / model / scenario
        if tree.is_folder(folder / "performance" / "run_1"):
            _copy_performance(tree, folder / "performance" / "run_1", results / "performance" / "run_1")
        if tree.is_folder(folder / "accuracy"):
            _copy_accuracy(tree, folder / "accuracy", results / "accuracy", rules.ACCURACY_FILES)
        measured = target / "measurements" / system / model / scenario
        source_measured = source_org / "measurements" / system / model / folder.name
        if tree.is_folder(source_measured):
            for path in tree.files(source_measured):
                if path.name in ("mlperf.conf", "user.conf") or (path.name.startswith(system)
                                                                 and path.suffix == ".json"):
                    _copy(path, measured / path.name)
        _write_text(measured / "README.md", measurement_readme(model, scenario, system, record))
        if not any(p.name.startswith(system) and p.suffix == ".json"
                   for p in (measured.iterdir() if measured.is_dir() else [])):
            _write_text(measured / f"{system}.json",
                        json.dumps(implementation_description(record), indent=2) + "\n")
        compliance = source_org / "compliance" / system / model / folder.name
        if tree.is_folder(compliance):
            _copy_compliance(tree, compliance, target / "compliance" / system / model / scenario)
        code = target / "code" / model / "README.md"
        if not code.exists():
            _write_text(code, f"# {model}: mlpace\n\nThe code is mlpace's (`pip install mlpace`); "
                              "each result's measurements/.../README.md gives the exact command.\n")
    problems += [f"{tree.relative(p)}: {why}" for p, why in tree.problems]
    return problems


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
