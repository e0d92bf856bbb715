"""`mlpace check` of MLPerf Inference v1.1 results: every rule the official v1.1 submission
checker applies, so that the two never disagree on a tree.

The official checker marks a problem with an ERROR line (some end the result, some only the
line; MLCommons review accepts neither); each becomes a FAIL here. What it only warns about
(an unknown system-description field, a closed scenario outside the round) is a WARN. The
rules themselves are data in `mlpace.rules.inference`.

One known difference, where the official checker has a bug: its `check_compliance_dir`
overwrites the performance verdict in its loop over the audits, so only the last one
(TEST05) counts, and a TEST01 or TEST04-A whose verification says TEST FAIL goes unreported.
mlpace fails every audit whose verification failed, as the compliance rules ask.

Verdicts are never taken from a result's own files: the accuracy is re-read from the headline
the official accuracy script printed (the checker's own regex) and compared with the round's
absolute target (closed division); LoadGen's verdict and settings come from
`mlperf_log_detail.txt`, as the official checker reads them.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.rules import inference as rules
from mlpace.rules.divisions import DIVISIONS
from mlpace.io import SafeTree, read_json_limited, read_text_limited
from mlpace.submission.loadgen_log import parse_detail_file

PASS, WARN, FAIL = "pass", "warn", "fail"
# The checker maps only these lower-case folder names to scenarios.
_SCENARIO_FOLDERS = {**{s: s for s in rules.SCENARIOS}, **{s.lower(): s for s in rules.SCENARIOS}}
_IGNORED_FILES = ("mlperf_log_trace.json", "results.json")


class _Org:
    """One org folder being checked: where findings go, paths made relative."""

    def __init__(self, report, tree: SafeTree, org: Path, division: str):
        self.report, self.tree, self.org, self.division = report, tree, org, division
        self.closed = division == "closed"

    def add(self, path: Path, rule: str, level: str, reason: str = "") -> None:
        self.report.add(self.tree.relative(path), rule, level, reason)

    def names(self, folder: Path) -> list[str]:
        return [p.name for p in self.tree.files(folder)] if self.tree.is_folder(folder) else []


def check_inference_org(report, tree: SafeTree, org: Path) -> None:
    """Check every result under one `<division>/<org>` folder of an inference submission."""
    division = org.parent.name
    state = _Org(report, tree, org, division)
    if division not in DIVISIONS:
        state.add(org, "division", FAIL, "inference results must sit under closed/<org>/ or open/<org>/ "
                                         f"(found under {division!r})")
        return
    for system in tree.folders(org / "results"):
        desc = _check_system(state, system.name)
        if desc is None:
            continue
        for model in tree.folders(system):
            _check_model(state, system.name, model, desc.get("system_type"))


# --- system description ---------------------------------------------------------------------

def _check_system(state: _Org, system: str) -> dict | None:
    """The system's description if results under it can be checked further, else None."""
    path = state.org / "systems" / f"{system}.json"
    if not state.tree.is_file(path):
        state.add(path, "system description", FAIL, f"missing: results/{system} has no systems/{system}.json")
        return None
    try:
        desc = read_json_limited(path)
    except MlpaceError as err:
        state.add(path, "system description", FAIL, str(err))
        return None
    if not isinstance(desc, dict):
        state.add(path, "system description", FAIL, "not a JSON object")
        return None
    status = str(desc.get("status", "")).lower()
    if status not in rules.AVAILABILITY:
        state.add(path, "availability", FAIL, f"status {desc.get('status')!r} is not one of "
                                              f"{', '.join(rules.AVAILABILITY)} (v1.1)")
        return None
    if desc.get("system_type") not in rules.SYSTEM_TYPES:
        state.add(path, "system type", FAIL, f"system_type {desc.get('system_type')!r} is not one of "
                                             f"{', '.join(rules.SYSTEM_TYPES)}")
        return None
    missing = [f for f in rules.SYSTEM_REQUIRED_FIELDS if f not in desc]
    known = set(rules.SYSTEM_REQUIRED_FIELDS) | set(rules.SYSTEM_POWER_FIELDS)
    unknown = [f for f in desc if f not in known]
    empty = [f for f in rules.SYSTEM_REQUIRED_FIELDS if f in desc and desc[f] in ("", None, [], {})]
    wrong = []
    if str(desc.get("submitter", "")).lower() != state.org.name.lower():
        wrong.append(f"submitter {desc.get('submitter')!r} but the folder is {state.org.name!r}")
    if desc.get("division") != state.division:
        wrong.append(f"division {desc.get('division')!r} but it sits under {state.division}/")
    if missing or wrong:
        state.add(path, "system description fields", FAIL,
                  "; ".join(([f"missing field(s): {', '.join(missing)}"] if missing else []) + wrong))
        return None
    state.add(path, "system description fields", PASS)
    if unknown:
        state.add(path, "system description fields", WARN, f"field(s) the v1.1 checker does not know: "
                                                           f"{', '.join(unknown)}")
    if empty:
        state.add(path, "system description fields", WARN, f"empty field(s): {', '.join(empty)}")
    return desc


# --- one model, its scenarios -----------------------------------------------------------------

def _check_model(state: _Org, system: str, folder: Path, system_type: str) -> None:
    mlperf_class = rules.mlperf_class(folder.name)
    if state.closed and mlperf_class not in {m.mlperf_class for m in rules.MODELS.values()}:
        state.add(folder, "model", FAIL, f"{folder.name!r} is not a v1.1 model; the closed division "
                                         f"takes {', '.join(rules.MODELS)}")
        return
    required = rules.REQUIRED_SCENARIOS[system_type].get(mlperf_class)
    if required is None:
        state.add(folder, "model", FAIL, f"{folder.name} ({mlperf_class}) is not a benchmark of "
                                         f"{system_type} systems in v1.1")
        return
    allowed = set(required) | set(rules.OPTIONAL_SCENARIOS[system_type].get(mlperf_class, []))
    passed = set()
    for scenario_folder in state.tree.folders(folder):
        scenario = _SCENARIO_FOLDERS.get(scenario_folder.name, scenario_folder.name)
        if state.closed and scenario not in allowed:
            state.add(scenario_folder, "scenario", WARN, f"{scenario} is neither required nor optional for "
                                                         f"{mlperf_class} on {system_type} systems: ignored")
            continue
        if _check_scenario(state, system, folder.name, mlperf_class, scenario, scenario_folder):
            passed.add(scenario)
    missing = [s for s in required if s not in passed]
    if missing and state.closed:
        state.add(folder, "required scenarios", FAIL, f"no valid {', '.join(missing)} result "
                                                      f"({system_type} systems need {', '.join(required)})")


def _check_scenario(state: _Org, system: str, model: str, mlperf_class: str, scenario: str,
                    folder: Path) -> bool:
    """Check one scenario folder; True when its performance run is valid (the checker's test
    for a required scenario)."""
    spec = rules.model_by_class(mlperf_class)
    _check_measurements(state, system, model, folder.name, folder)
    _check_accuracy(state, spec, folder / "accuracy")
    valid = _check_performance(state, spec, scenario, folder / "performance" / "run_1")
    if state.tree.is_folder(folder / "performance" / "power"):
        state.add(folder / "performance" / "power", "power", WARN, "power measurements are not checked "
                  "by mlpace: run the official checker on this tree")
    if state.closed:
        _check_compliance(state, mlperf_class, scenario,
                          state.org / "compliance" / system / model / folder.name, folder)
    return valid


def _check_measurements(state: _Org, system: str, model: str, scenario_name: str, result: Path) -> None:
    folder = state.org / "measurements" / system / model / scenario_name
    if not state.tree.is_folder(folder):
        state.add(result, "measurements", FAIL, f"no measurements/{system}/{model}/{scenario_name}/ folder")
        return
    names = state.names(folder)
    problems = [f"{name} missing" for name in rules.MEASUREMENT_FILES if name not in names]
    described = next((n for n in names if n.startswith(system) and n.endswith(".json")), None)
    if described is None:
        problems.append(f"{system}*.json (the implementation description) missing")
    else:
        try:
            implementation = read_json_limited(folder / described)
        except MlpaceError as err:
            implementation = None
            problems.append(str(err))
        if implementation is not None:
            absent = [k for k in rules.IMPLEMENTATION_FIELDS
                      if not isinstance(implementation, dict) or k not in implementation]
            if absent:
                problems.append(f"{described} lacks {', '.join(absent)}")
        if not state.tree.is_folder(state.org / "code" / model):
            problems.append(f"no code/{model}/ folder")
    state.add(folder, "measurements", FAIL if problems else PASS, "; ".join(problems))


def _file_list(state: _Org, folder: Path, required, optional=()) -> None:
    names = [n for n in state.names(folder) if n not in _IGNORED_FILES and n not in optional]
    missing = [n for n in required if n not in names]
    extra = [n for n in names if n not in required]
    if missing or extra:
        state.add(folder, "file list", FAIL, "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) +
            ([f"files the official layout does not allow: {', '.join(extra)}"] if extra else [])))


def _detail_errors(state: _Org, path: Path) -> bool:
    """Report errors LoadGen logged in a detail log; True when there are none."""
    if not state.tree.is_file(path):
        state.add(path, "LoadGen detail log", FAIL, "missing")
        return False
    try:
        detail = parse_detail_file(path)
    except MlpaceError as err:
        state.add(path, "LoadGen detail log", FAIL, str(err))
        return False
    if detail["errors"]:
        state.add(path, "LoadGen errors", FAIL, "; ".join(detail["errors"][:3]))
        return False
    return True


def read_accuracy(text: str, metric: str) -> tuple[float | None, str | None]:
    """(the headline figure, the log's hash) of an accuracy.txt, read as the official checker
    reads them: the first line matching the metric's official pattern, the first hash line."""
    value = digest = None
    for line in text.splitlines(keepends=True):
        found = re.match(rules.ACCURACY_PATTERNS[metric], line)
        if found:
            value = found.group(1)
        found = re.match(rules.HASH_PATTERN, line.rstrip("\n"))
        if found:
            digest = found.group(1)
        if value and digest:
            break
    try:
        return (float(value) if value else None), digest
    except ValueError:
        return None, digest


def _check_accuracy(state: _Org, spec: rules.InferenceModel | None, folder: Path) -> None:
    text_path = folder / "accuracy.txt"
    if "accuracy.txt" not in state.names(folder):
        state.add(folder, "accuracy run", FAIL, "no accuracy/accuracy.txt (every scenario needs its accuracy run)")
        return
    _file_list(state, folder, rules.ACCURACY_FILES)
    if spec is None:
        state.add(text_path, "accuracy", FAIL, "no v1.1 accuracy rule for this model")
        return
    try:
        value, digest = read_accuracy(read_text_limited(text_path, 10 * 2**20, encoding="utf-8"), spec.metric)
    except MlpaceError as err:
        state.add(text_path, "accuracy", FAIL, str(err))
        return
    label = {"acc": "accuracy", "WER": "accuracy (100 - WER)"}.get(spec.metric, spec.metric)
    if value is None:
        # The official checker finds no figure: closed results fail, open ones are taken as they are.
        state.add(text_path, "accuracy", FAIL if state.closed else WARN,
                  f"no line in the official {spec.metric} format (`{rules.ACCURACY_PATTERNS[spec.metric]}`)")
    elif state.closed:
        ok = value >= spec.target
        state.add(text_path, "accuracy target", PASS if ok else FAIL,
                  f"{label} = {value:g} {'>=' if ok else '<'} {spec.target:.4f}, the v1.1 target "
                  f"({spec.fraction * 100:g} % of {spec.reference_quality:g})")
    else:
        state.add(text_path, "accuracy", PASS, f"{label} = {value:g} (open division: no target)")
    if not digest:
        state.add(text_path, "accuracy log hash", FAIL, "no hash= line for mlperf_log_accuracy.json "
                                                        "(mlpace package writes it)")
    log = folder / "mlperf_log_accuracy.json"
    if not state.tree.is_file(log):
        state.add(log, "accuracy log", FAIL, "missing")
    elif log.stat().st_size > rules.MAX_ACCURACY_LOG_BYTES:
        state.add(log, "accuracy log", FAIL, f"not truncated ({log.stat().st_size} bytes; at most "
                                             f"{rules.MAX_ACCURACY_LOG_BYTES})")
    _detail_errors(state, folder / "mlperf_log_detail.txt")


def _check_performance(state: _Org, spec: rules.InferenceModel | None, scenario: str, folder: Path) -> bool:
    if not state.tree.is_folder(folder):
        state.add(folder, "performance run", FAIL, "missing")
        return False
    _file_list(state, folder, rules.PERFORMANCE_FILES, rules.PERFORMANCE_OPTIONAL_FILES)
    path = folder / "mlperf_log_detail.txt"
    if not _detail_errors(state, path):
        return False
    values = parse_detail_file(path)["values"]
    if spec is None:
        state.add(path, "performance", FAIL, "no v1.1 rules for this model")
        return False
    valid = values.get("result_validity") == "VALID"
    ran = values.get("effective_scenario")
    result = values.get(rules.RESULT_KEYS.get(ran, ""))
    state.add(path, "LoadGen validity", PASS if valid else FAIL,
              f"{rules.RESULT_KEYS.get(ran)} = {result}" if valid
              else f"LoadGen says {values.get('result_validity')!r}")
    if ran != scenario:
        # The official checker judges what LoadGen ran (an Offline result may be inferred from a
        # SingleStream run), so this is worth a look, not a rejection.
        state.add(path, "scenario", WARN, f"the folder says {scenario} but LoadGen ran {ran}")
    problems = []

    def at_least(key: str, need, what: str) -> None:
        have = values.get(key)
        if not isinstance(have, (int, float)) or have < need:
            problems.append(f"{what} is {have}; v1.1 needs at least {need}")

    at_least("effective_performance_sample_count", spec.performance_sample_count, "performance_sample_count")
    if ran in spec.min_queries:
        at_least("effective_min_query_count", spec.min_queries[ran], "min_query_count")
    if ran == "Offline":
        at_least("effective_samples_per_query", rules.OFFLINE_MIN_SAMPLES, "samples per Offline query")
    at_least("effective_min_duration_ms", rules.MIN_DURATION_MS, "min_duration (ms)")
    for key, need in rules.SEEDS.items():
        if values.get(f"effective_{key}") != need:
            problems.append(f"{key} is {values.get(f'effective_{key}')}, not the round's {need}")
    bound = spec.latency_ns.get(ran)
    p99 = values.get("result_99.00_percentile_per_query_latency_ns" if ran == "MultiStream"
                     else "result_99.00_percentile_latency_ns")
    if bound and (not isinstance(p99, (int, float)) or p99 > bound):
        problems.append(f"p99 latency {p99} ns is over the {bound} ns bound")
    state.add(path, "v1.1 run rules", FAIL if problems else PASS, "; ".join(problems))
    return valid and not problems


def _check_compliance(state: _Org, mlperf_class: str, scenario: str, folder: Path, result: Path) -> None:
    if not state.tree.is_folder(folder):
        state.add(result, "compliance audits", FAIL, f"no compliance/{'/'.join(folder.parts[-3:])}/ "
                  "(closed results need TEST01, TEST04 and TEST05: `mlpace infer --submission`)")
        return
    for test in rules.compliance_tests(mlperf_class, scenario):
        test_dir = folder / test
        if not state.tree.is_folder(test_dir):
            state.add(folder, "compliance audits", FAIL, f"{test} missing")
            continue
        problems = []
        if test != "TEST04-B":
            verify = test_dir / "verify_performance.txt"
            if not state.tree.is_file(verify):
                problems.append("verify_performance.txt missing")
            elif rules.COMPLIANCE_PASS not in read_text_limited(verify, 2**20):
                problems.append("verify_performance.txt does not say TEST PASS")
        if not state.tree.is_folder(test_dir / "performance" / "run_1"):
            problems.append("no performance/run_1")
        if test == "TEST01":
            if not state.tree.is_file(test_dir / "verify_accuracy.txt"):
                problems.append("verify_accuracy.txt missing")
            if not state.tree.is_folder(test_dir / "accuracy"):
                problems.append("no accuracy folder")
        state.add(test_dir, "compliance audit", FAIL if problems else PASS, "; ".join(problems))
