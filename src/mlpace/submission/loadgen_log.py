"""Parsers for the files MLPerf LoadGen writes, and the accuracy reports beside them.

- `mlperf_log_summary.txt`: the human summary. Its layout has changed across LoadGen versions
  (v1.1 put Server's "Scheduled samples per second" first; v4+ puts "Completed samples per
  second" there and adds early stopping lines), so the parser reads every `name : value`
  line and takes the result metric to be the first line between `Mode` and `Result is`.
- `mlperf_log_detail.txt`: MLLOG lines (same format as training logs).
- `accuracy.txt`: whatever the benchmark's accuracy script printed; the headline numbers
  (accuracy=, mAP=, AUC=, f1, WER, DICE mean) are picked out of the noise.

Folder names are not trusted for the scenario: real submissions use both `Offline` and
`offline`; `canonical_scenario` maps either to LoadGen's spelling.
"""

from __future__ import annotations

import math
import os
import re

from mlpace.io import read_text_limited
from mlpace.submission.training_log import parse_mllog_lines

SCENARIOS = ["SingleStream", "MultiStream", "Server", "Offline"]
_SCENARIO_BY_LOWER = {s.lower(): s for s in SCENARIOS}
# The yes/no lines under "Result is", by the name this module gives them.
_CONSTRAINTS = {
    "min duration satisfied": "min_duration_satisfied",
    "min queries satisfied": "min_queries_satisfied",
    "performance constraints satisfied": "performance_constraints_satisfied",
    "early stopping satisfied": "early_stopping_satisfied",
}
_PERCENTILE = re.compile(r"^([\d.]+) percentile latency \(ns\)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def canonical_scenario(name: str) -> str | None:
    """LoadGen's spelling of a scenario name in any case (`offline` -> `Offline`), else None."""
    return _SCENARIO_BY_LOWER.get(name.replace("_", "").replace("-", "").lower())


def _number(text: str):
    """A number where the text is one Python can hold (not 5,000 digits, not infinite)."""
    text = text.strip()
    if _NUMBER.match(text):
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            return text
        return value if not isinstance(value, float) or math.isfinite(value) else text
    return text


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_summary_text(text: str, path: str = "<text>") -> dict:
    """The fields of one `mlperf_log_summary.txt` (see module doc); never raises on content."""
    summary = _empty_summary(path)
    section = "results"
    after_mode = False      # between "Mode" and "Result is": where the result metric stands
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("====="):
            continue
        if line in _SECTIONS:
            section = _SECTIONS[line]
            continue
        if _read_message_count(summary, line):
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not value:   # no `name : value` (titles such as "Recommendations:" included)
            continue
        if section == "results":
            after_mode = _read_result_line(summary, name, value, after_mode)
        elif section == "stats":
            _read_stats_line(summary, name, value)
        else:
            summary["settings"][name] = _number(value)
    return summary


# The titles that open each part of the summary after the results.
_SECTIONS = {"Additional Stats": "stats", "Test Parameters Used": "settings"}


def _empty_summary(path) -> dict:
    return {
        "path": str(path), "sut_name": None, "scenario": None, "mode": None,
        "metric": None, "value": None, "result": None, "valid": False,
        "min_duration_satisfied": None, "min_queries_satisfied": None,
        "performance_constraints_satisfied": None, "early_stopping_satisfied": None,
        "latency_percentiles_ns": {}, "stats": {}, "settings": {},
        "warnings": None, "errors": None,
    }


def _read_message_count(summary: dict, line: str) -> bool:
    """"No warnings encountered", "2 errors encountered" ...: True when `line` was one."""
    for kind in ("warnings", "errors"):
        if line.startswith(f"No {kind} encountered"):
            summary[kind] = False
            return True
        if re.match(rf"^\d+ {kind[:-1]}s? encountered", line):
            summary[kind] = True
            return True
    return False


def _read_result_line(summary: dict, name: str, value: str, after_mode: bool) -> bool:
    """One `name : value` line of the results part; returns whether the metric is still to come."""
    lower = name.lower()
    if lower == "sut name":
        summary["sut_name"] = value
    elif lower == "scenario":
        summary["scenario"] = canonical_scenario(value) or value
    elif lower == "mode":
        summary["mode"] = value
        return True
    elif lower == "result is":
        summary["result"] = value
        summary["valid"] = value.upper() == "VALID"
        return False
    elif lower in _CONSTRAINTS:
        summary[_CONSTRAINTS[lower]] = value.lower().startswith("yes")
    elif after_mode and summary["metric"] is None:
        summary["metric"], summary["value"] = name, _number(value)
    else:
        summary["stats"][name] = _number(value)
    return after_mode


def _read_stats_line(summary: dict, name: str, value: str) -> None:
    """A line of "Additional Stats": a latency percentile, or another figure."""
    match = _PERCENTILE.match(name)
    if match and _finite(match.group(1)) is not None:      # not "99.99.90 percentile"
        summary["latency_percentiles_ns"][_finite(match.group(1))] = _number(value)
    else:
        summary["stats"][name] = _number(value)


def parse_summary_file(path: str | os.PathLike) -> dict:
    """Parse one `mlperf_log_summary.txt`; MlpaceError only when it cannot be read."""
    return parse_summary_text(read_text_limited(path), str(path))


def is_performance_summary(summary: dict) -> bool:
    """True for a real performance-run summary (accuracy runs write a near-empty one)."""
    return summary.get("scenario") is not None and summary.get("result") is not None


def parse_detail_file(path: str | os.PathLike) -> dict:
    """`mlperf_log_detail.txt` as {key: first value}, plus the errors and warnings it logged."""
    records = parse_mllog_lines(read_text_limited(path))
    values: dict = {}
    errors, warnings = [], []
    for record in records:
        values.setdefault(record["key"], record.get("value"))
        meta = record["metadata"]
        if meta.get("is_error"):
            errors.append(f"{record['key']}: {record.get('value')}")
        elif meta.get("is_warning"):
            warnings.append(f"{record['key']}: {record.get('value')}")
    return {"path": str(path), "values": values, "errors": errors, "warnings": warnings,
            "records": len(records)}


# Headline numbers of the reference accuracy scripts, as (name, pattern); value in group 1.
_ACCURACY_PATTERNS = [
    ("accuracy", re.compile(r"\baccuracy\s*=\s*([-\d.eE+]+)%?")),
    ("mAP", re.compile(r"\bmAP\s*=\s*([-\d.eE+]+)%?")),
    ("AUC", re.compile(r"\bAUC\s*=\s*([-\d.eE+]+)%?")),
    ("WER", re.compile(r"Word Error Rate:\s*([-\d.eE+]+)%?")),
    ("DICE", re.compile(r"Accuracy: mean\s*=\s*([-\d.eE+]+)")),
    ("f1", re.compile(r'"f1":\s*([-\d.eE+]+)')),
    ("exact_match", re.compile(r'"exact_match":\s*([-\d.eE+]+)')),
]
_HASH = re.compile(r"^hash=([0-9a-fA-F]+)\s*$", re.M)


def parse_accuracy_text(text: str, path: str = "<text>") -> dict:
    """Headline accuracy numbers in an `accuracy.txt` (last occurrence of each wins)."""
    metrics = {}
    for name, pattern in _ACCURACY_PATTERNS:
        found = pattern.findall(text)
        if found and _finite(found[-1]) is not None:     # accuracy=1e999 is no accuracy
            metrics[name] = _finite(found[-1])
    hashes = _HASH.findall(text)
    # `mlpace infer` states its own target and verdict: "target=0.75000 (...), result=PASS".
    verdict = re.search(r"target=([-\d.eE+]+).*result=(PASS|FAIL)", text)
    return {"path": str(path), "metrics": metrics, "hash": hashes[-1] if hashes else None,
            "target": _finite(verdict.group(1)) if verdict else None,
            "passed": (verdict.group(2) == "PASS") if verdict and _finite(verdict.group(1)) is not None
            else None}


def parse_accuracy_file(path: str | os.PathLike) -> dict:
    return parse_accuracy_text(read_text_limited(path), str(path))
