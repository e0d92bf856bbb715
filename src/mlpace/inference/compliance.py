"""The MLPerf Inference v1.1 compliance audits (TEST01, TEST04-A/B, TEST05) and their verification.

An audit is a LoadGen performance run that finds an `audit.config`: LoadGen reads it after the
test settings and lets it override them. mlpace writes the audit.config text of mlcommons'
`compliance/nvidia/TEST0x/` into the audit's run folder and hands LoadGen that path (the
path LoadGen would otherwise look for in the working directory).

    TEST01    performance mode that also logs a sample of responses (accuracy_log_sampling_target):
              the responses must equal those of the accuracy run, and the speed that of the result
    TEST04-A  P unique samples (P = performance sample count) ...
    TEST04-B  ... and the same sample P times: caching would make B faster than A
    TEST05    the result's run with other random seeds: the SUT must not be tuned to the seeds

Which audits a result needs, their settings (seeds, sampling targets) and the pass thresholds
of the verify scripts are rules: `mlpace.rules.inference` holds them; this module runs and
checks the audits.

Verification writes what mlcommons' `run_verification.py` scripts write, in the layout the
submission checker reads:

    compliance/<system>/<benchmark>/<scenario>/TEST01/verify_accuracy.txt, verify_performance.txt
                                               TEST01/accuracy/{mlperf_log_accuracy.json, accuracy.txt,
                                                                [baseline_accuracy.txt, compliance_accuracy.txt]}
                                               TEST0x/performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
                                               TEST04-A/verify_performance.txt, TEST05/verify_performance.txt

The checker looks for the line "TEST PASS" in each verify file.

LoadGen 6 departs from v1.1 in one place: it no longer reads seeds from an audit.config, so
TEST05's alternate seeds (the same three numbers) are set through LoadGen's `test05` settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.io import write_atomic
from mlpace.rules import inference as rules

_HEADER = ("# The format of this config file is 'key = value'.\n"
           "# The key has the format 'model.scenario.key'. Value is mostly int64_t.\n"
           "# Model maybe '*' as wildcard. In that case the value applies to all models.\n"
           "# All times are in milli seconds\n"
           "# mode dictionary (0 = submission, 1 = accuracy, 2 = performance, 3 = find peak perf)\n")


def audit_config(test: str, model: str) -> str:
    """The text of `audit.config` for one audit (mlcommons compliance/nvidia/<test>/)."""
    mode = rules.AUDIT_MODE
    if test == "TEST01":
        body = (f"*.*.mode = {mode}\n*.*.accuracy_log_rng_seed = {rules.TEST01_LOG_SEED}\n"
                f"*.*.accuracy_log_sampling_target = {rules.test01_sampling_target(model)}\n")
    elif test in ("TEST04-A", "TEST04-B"):
        unique = int(test == "TEST04-A")
        body = "".join(f"*.{s}.mode = {mode}\n*.{s}.performance_issue_unique = {unique}\n"
                       f"*.{s}.performance_issue_same = {1 - unique}\n"
                       + ("" if unique else f"*.{s}.performance_issue_same_index = {rules.TEST04B_SAME_INDEX}\n")
                       for s in rules.SCENARIOS)
    elif test == "TEST05":
        body = f"*.*.mode = {mode}\n" + "".join(f"*.*.{k} = {v}\n" for k, v in rules.TEST05_SEEDS.items())
    else:
        raise MlpaceError(f"unknown compliance test {test!r}; known: {', '.join(rules.COMPLIANCE_TESTS)}")
    return _HEADER + body


def apply_to_settings(test: str, settings) -> None:
    """What LoadGen 6 no longer takes from the audit.config (see module doc): TEST05's seeds."""
    if test == "TEST05":
        settings.test05 = True
        for key, value in rules.TEST05_SEEDS.items():
            setattr(settings, f"test05_{key}", value)


# --- verification --------------------------------------------------------------------------

def _summary(path: Path) -> dict:
    from mlpace.submission.loadgen_log import parse_summary_file
    if not path.is_file():
        raise MlpaceError(f"no LoadGen summary at {path}")
    return parse_summary_file(path)


def _score(summary: dict) -> float | None:
    value = summary.get("value")
    return float(value) if isinstance(value, (int, float)) else None


def _lower_is_better(scenario: str) -> bool:
    return scenario in rules.LATENCY_SCENARIOS


def _tolerance(scenario: str, reference: float, default: float) -> float:
    limit = rules.SHORT_LATENCY_NS.get(scenario)
    return rules.SHORT_LATENCY_TOLERANCE if limit is not None and reference <= limit else default


def compare_performance(reference_summary: Path, test_summary: Path, tolerance: float,
                        names: tuple[str, str] = ("reference", "test"),
                        one_sided: bool = False) -> tuple[bool, list[str]]:
    """The audit's metric against the result's: within `tolerance` (only 'not worse' if one_sided).

    Returns (passed, the lines of verify_performance.txt); both runs must be VALID."""
    lines = ["Verifying performance."]
    reference, test = _summary(reference_summary), _summary(test_summary)
    for summary, name in ((reference, names[0]), (test, names[1])):
        if not summary.get("valid"):
            return False, lines + [f"TEST FAIL: {name.capitalize()} results are invalid"]
    if reference.get("scenario") != test.get("scenario"):
        return False, lines + ["TEST FAIL: Test and reference scenarios do not match!"]
    scenario = reference["scenario"]
    ref_score, test_score = _score(reference), _score(test)
    lines += [f"{names[0]} score = {ref_score}", f"{names[1]} score = {test_score}"]
    if ref_score is None or test_score is None or ref_score <= 0:
        return False, lines + ["TEST FAIL: Test score invalid"]
    tol = _tolerance(scenario, ref_score, tolerance)
    worse = test_score > ref_score * (1 + tol) if _lower_is_better(scenario) else \
        test_score < ref_score * (1 - tol)
    better = test_score < ref_score * (1 - tol) if _lower_is_better(scenario) else \
        test_score > ref_score * (1 + tol)
    passed = not worse and (one_sided or not better)
    lines.append("TEST PASS" if passed else "TEST FAIL: Test score invalid")
    return passed, lines


def compare_test04(test04a_summary: Path, test04b_summary: Path) -> tuple[bool, list[str]]:
    """TEST04-B (same sample) must not be faster than TEST04-A (unique samples), 10 % noise
    allowed (20 % for SingleStream latencies under 200 us), as verify_test4_performance.py."""
    lines = ["Verifying performance."]
    a, b = _summary(test04a_summary), _summary(test04b_summary)
    if a.get("scenario") != b.get("scenario"):
        return False, lines + ["TEST FAIL: Test and reference scenarios do not match!"]
    scenario = a["scenario"]
    score_a, score_b = _score(a), _score(b)
    lines += [f"TEST04-A score = {score_a}", f"TEST04-B score = {score_b}"]
    if score_a is None or score_b is None:
        return False, lines + ["TEST FAIL: Test score invalid"]
    tol = _tolerance(scenario, score_a, rules.TEST04_TOLERANCE)
    if score_a * (1 - tol) < score_b < score_a * (1 + tol):
        passed = True
    elif _lower_is_better(scenario):
        passed = score_b > score_a            # B slower (higher latency): no caching seen
    else:
        passed = score_b < score_a            # B slower (lower rate)
    lines.append("TEST PASS" if passed else "TEST FAIL: Test score invalid")
    return passed, lines


def _accuracy_entries(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text() or "[]")
    except (OSError, ValueError) as err:
        raise MlpaceError(f"cannot read LoadGen accuracy log {path}: {err}") from None
    if not isinstance(entries, list):
        raise MlpaceError(f"{path}: not a LoadGen accuracy log (expected a JSON list)")
    return entries


def compare_responses(accuracy_log: Path, audit_log: Path, total: int) -> dict:
    """TEST01's first check: each response logged in performance mode equals, byte for byte,
    the accuracy run's response to the same sample.

    A performance run may present a small data set several times over (a sample count above
    the data set's size: index i is sample i mod total), so indices are compared mod `total`."""
    by_index: dict[int, str] = {}
    duplicates = mismatched_acc = 0
    acc_entries = _accuracy_entries(accuracy_log)
    for entry in acc_entries:
        index = int(entry["qsl_idx"])
        if index in by_index:
            duplicates += 1
            mismatched_acc += by_index[index] != entry["data"]
        else:
            by_index[index] = entry["data"]
    matched = mismatched = missing = 0
    perf_entries = _accuracy_entries(audit_log)
    for entry in perf_entries:
        reference = by_index.get(int(entry["qsl_idx"]) % total)
        if reference is None:
            missing += 1
            continue
        matched += 1
        mismatched += reference != entry["data"]
    return {"num_acc_log_entries": len(acc_entries), "num_acc_log_duplicate_keys": duplicates,
            "num_acc_log_data_mismatch": mismatched_acc, "num_perf_log_entries": len(perf_entries),
            "num_perf_log_qsl_idx_match": matched, "num_perf_log_data_mismatch": mismatched,
            "num_missing_qsl_idxs": missing}


def _decode(entries: list[dict], dtype: str, total: int) -> dict[int, np.ndarray]:
    return {int(e["qsl_idx"]) % total: np.frombuffer(bytes.fromhex(e["data"]), dtype=dtype)
            for e in entries}


def _subset_score(task, outputs: dict[int, np.ndarray]) -> float | None:
    """The task's accuracy script on some samples only; None where it needs all of them."""
    try:
        return float(task.score(outputs)) if outputs else None
    except Exception:   # noqa: BLE001 - e.g. AUC of one class: no number, said so in the file
        return None


def _accuracy_text(task, outputs: dict[int, np.ndarray], score: float | None, log_path: Path) -> str:
    """accuracy.txt of some logged samples, as the official accuracy script prints it."""
    from mlpace.inference.runner import accuracy_headline
    headline = accuracy_headline(task, outputs, score) if score is not None else \
        f"accuracy: not computable on this subset of samples, samples={len(outputs)}"
    return f"{headline}\nhash={hashlib.sha256(log_path.read_bytes()).hexdigest()}\n"


def verify_test01(task, fraction: float, results_dir: Path, out_dir: Path) -> dict:
    """TEST01: responses against the accuracy run, speed against the result; writes the files.

    `results_dir` is results/<system>/<benchmark>/<scenario>; `out_dir` the TEST01 folder whose
    performance/run_1 holds the audit run (its mlperf_log_accuracy.json moves to accuracy/)."""
    run = out_dir / "performance" / "run_1"
    accuracy = out_dir / "accuracy"
    accuracy.mkdir(parents=True, exist_ok=True)
    if (run / "mlperf_log_accuracy.json").exists():
        shutil.move(str(run / "mlperf_log_accuracy.json"), accuracy / "mlperf_log_accuracy.json")
    audit_log = accuracy / "mlperf_log_accuracy.json"
    reference_log = results_dir / "accuracy" / "mlperf_log_accuracy.json"
    for path in (audit_log, reference_log):
        if not path.is_file():
            raise MlpaceError(f"TEST01 needs {path}")
    counts = compare_responses(reference_log, audit_log, task.total)
    identical = counts["num_perf_log_data_mismatch"] == 0 and counts["num_perf_log_qsl_idx_match"] > 0
    lines = ["Verifying accuracy."] + [f"{k} = {v}" for k, v in counts.items()]
    audit_entries = _accuracy_entries(audit_log)
    compliance = _decode(audit_entries, task.output_dtype, task.total)
    compliance_score = _subset_score(task, compliance)
    write_atomic(accuracy / "accuracy.txt",
                 _accuracy_text(task, compliance, compliance_score, audit_log))
    verdict = {"identical": identical, "counts": counts, "compliance_score": compliance_score}
    if identical:
        lines.append("TEST PASS")
        accuracy_passed = True
    else:
        # The README's part III: score the same samples from both logs; the delta decides.
        reference = _decode(_accuracy_entries(reference_log), task.output_dtype, task.total)
        baseline = {i: reference[i] for i in compliance if i in reference}
        baseline_score = _subset_score(task, baseline)
        write_atomic(accuracy / "baseline_accuracy.txt",
                     _accuracy_text(task, baseline, baseline_score, reference_log))
        write_atomic(accuracy / "compliance_accuracy.txt",
                     _accuracy_text(task, compliance, compliance_score, audit_log))
        allowed = rules.TEST01_ACCURACY_DELTA.get(fraction, rules.TEST01_ACCURACY_DELTA[0.99])
        delta = (abs(baseline_score - compliance_score) / abs(baseline_score)
                 if baseline_score and compliance_score is not None else None)
        accuracy_passed = delta is not None and delta <= allowed
        lines.append("TEST FAIL")
        lines.append(f"responses differ; baseline accuracy {baseline_score}, compliance accuracy "
                     f"{compliance_score}: relative delta {delta} "
                     f"{'within' if accuracy_passed else 'NOT within'} {allowed:.1%}")
        verdict.update({"baseline_score": baseline_score, "delta": delta})
    write_atomic(out_dir / "verify_accuracy.txt", "\n".join(lines) + "\n")
    perf_passed, perf_lines = compare_performance(
        results_dir / "performance" / "run_1" / "mlperf_log_summary.txt",
        run / "mlperf_log_summary.txt", rules.TEST01_PERFORMANCE_TOLERANCE)
    write_atomic(out_dir / "verify_performance.txt", "\n".join(perf_lines) + "\n")
    verdict.update({"accuracy_passed": accuracy_passed, "performance_passed": perf_passed,
                    "passed": accuracy_passed and perf_passed})
    return verdict


def verify_test05(results_dir: Path, out_dir: Path) -> dict:
    passed, lines = compare_performance(
        results_dir / "performance" / "run_1" / "mlperf_log_summary.txt",
        out_dir / "performance" / "run_1" / "mlperf_log_summary.txt", rules.TEST05_TOLERANCE,
        one_sided=True)
    write_atomic(out_dir / "verify_performance.txt", "\n".join(lines) + "\n")
    return {"passed": passed}


def verify_test04(compliance_dir: Path) -> dict:
    summaries = [compliance_dir / t / "performance" / "run_1" / "mlperf_log_summary.txt"
                 for t in ("TEST04-A", "TEST04-B")]
    passed, lines = compare_test04(*summaries)
    write_atomic(compliance_dir / "TEST04-A" / "verify_performance.txt", "\n".join(lines) + "\n")
    return {"passed": passed}
