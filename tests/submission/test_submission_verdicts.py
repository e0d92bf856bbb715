"""Verdicts from the official rules: what a run counts for, in summarize, check and import alike.

- a run over the round's init-time limit counts as failed, exactly as the official summarizer
  scores the same folder (it drops every run that fails compliance);
- impossible times are invalid, never scored; a 400-digit time_ms does not crash the parser;
- a benchmark folder with zero result logs fails; an unreadable log is reported by name.
"""

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from mlpace.rules.rounds import init_time_limit_ms
from mlpace.submission.check import FAIL, check
from mlpace.submission.summarize import summarize
from mlpace.submission.training_log import parse_result_text

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
NVIDIA = FIXTURES / "training_v1.0" / "NVIDIA"
MINIGO_SYSTEM = "dgxa100_ngc21.05_tensorflow"
PUBLISHED_MINIGO = 269.53548333333333          # the official summarizer, ruleset 1.0.0


def _minigo_org(tmp_path: Path) -> Path:
    """NVIDIA's published v1.0 MiniGo result (10 runs), in a `training_v1.0` folder."""
    org = tmp_path / "training_v1.0" / "NVIDIA"
    shutil.copytree(NVIDIA / "results" / MINIGO_SYSTEM / "minigo", org / "results" / MINIGO_SYSTEM / "minigo")
    (org / "systems").mkdir()
    shutil.copyfile(NVIDIA / "systems" / f"{MINIGO_SYSTEM}.json", org / "systems" / f"{MINIGO_SYSTEM}.json")
    for path in [org, *org.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return org


def _edit_time(path: Path, key: str, shift_ms: float) -> None:
    """Move the time_ms of the first `key` line of a real log by `shift_ms`."""
    lines = path.read_text(encoding="latin-1").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if f'"key": "{key}"' in line:
            head, record = line.split(":::MLLOG ", 1)
            data = json.loads(record)
            data["time_ms"] += shift_ms
            lines[i] = f"{head}:::MLLOG {json.dumps(data)}\n"
            break
    path.write_text("".join(lines), encoding="latin-1")


def _official_score(folder: Path, benchmark: str, ruleset: str) -> float | None:
    """The official result summarizer's score of one benchmark folder (it runs the
    compliance checker on every file and drops the files that fail)."""
    from mlperf_logging.result_summarizer import result_summarizer
    with contextlib.redirect_stdout(io.StringIO()):
        score, _, _ = result_summarizer._compute_strong_score_standalone(
            benchmark, folder.parent.name, False, str(folder), "training", ruleset)
    return score


def _minigo(summary):
    [result] = summary.training
    return result


def test_init_time_limit_of_the_round():
    assert init_time_limit_ms("0.6.0", "closed") == 20 * 60_000
    assert init_time_limit_ms("0.7.0", "open") == 20 * 60_000
    assert init_time_limit_ms("1.0.0", "open") == init_time_limit_ms("1.1.0", "closed") == 30 * 60_000
    assert init_time_limit_ms("2.0.0", "closed") == 30 * 60_000
    assert init_time_limit_ms("3.1.0", "open") == 240 * 60_000


def test_a_run_over_the_init_limit_counts_as_failed_like_the_official_summarizer(tmp_path):
    """Dell's published v1.1 MiniGo scores count such a run as the failed, dropped one."""
    org = _minigo_org(tmp_path)
    folder = org / "results" / MINIGO_SYSTEM / "minigo"
    assert _minigo(summarize(org)).minutes == pytest.approx(PUBLISHED_MINIGO, rel=1e-12)
    # result_4 is a middle run (264.70 min); its init took 0.83 min. Make it 30.83 min.
    _edit_time(folder / "result_4.txt", "init_start", -30 * 60_000)
    result = _minigo(summarize(org))
    run = next(r for r in result.runs if r.path.endswith("result_4.txt"))
    assert run.minutes is None and any("init_start -> init_stop took 30.8 min" in n for n in run.notes)
    assert result.score.failed == 1
    assert result.minutes != pytest.approx(PUBLISHED_MINIGO)
    # check scores through summarize: the same verdict, and the run is named.
    report = check(org, compliance=False, workers=1)
    assert any(f.rule == "score-changing rules" and f.path.endswith("result_4.txt") for f in report.findings)
    official = _official_score(folder, "minigo", "1.0.0")
    assert result.minutes == pytest.approx(official, rel=1e-12)


def test_the_init_limit_is_strict_as_in_the_checker(tmp_path):
    """The checker's test is `init_stop - first init_start < 30 min`: exactly 30 min fails."""
    org = _minigo_org(tmp_path)
    folder = org / "results" / MINIGO_SYSTEM / "minigo"
    run = parse_result_text((folder / "result_9.txt").read_text(encoding="latin-1"))
    took = run.init_stop_ms - run.init_start_ms
    _edit_time(folder / "result_9.txt", "init_start", -(30 * 60_000 - took))      # exactly 30 min
    _edit_time(folder / "result_2.txt", "init_start", -(29 * 60_000))             # 29.8 min: fine
    result = _minigo(summarize(org))
    counted = {Path(r.path).name: r.minutes is not None for r in result.runs}
    assert not counted["result_9.txt"] and counted["result_2.txt"]
    assert result.minutes == pytest.approx(_official_score(folder, "minigo", "1.0.0"), rel=1e-12)


def test_impossible_times_are_never_scored(tmp_path):
    org = _minigo_org(tmp_path)
    folder = org / "results" / MINIGO_SYSTEM / "minigo"
    path = folder / "result_3.txt"
    text = path.read_text(encoding="latin-1")
    run = parse_result_text(text)
    _edit_time(path, "run_stop", -(run.run_stop_ms - run.run_start_ms) - 60_000)   # before run_start
    (folder / "result_5.txt").write_text(
        (folder / "result_5.txt").read_text(encoding="latin-1").replace(
            '"key": "run_stop"', '"key": "run_stop", "time_ms": 1' + "0" * 400),
        encoding="latin-1")
    result = _minigo(summarize(org))
    by_name = {Path(r.path).name: r for r in result.runs}
    assert by_name["result_3.txt"].minutes is None
    assert any("before run_start" in n for n in by_name["result_3.txt"].notes)
    assert by_name["result_5.txt"].minutes is None          # no OverflowError, not scored
    assert all(m is None or m > 0 for m in (r.minutes for r in result.runs))
    # Two failed runs of ten: more than the one olympic scoring tolerates.
    assert result.minutes is None and result.score.failed == 2


@pytest.mark.parametrize("stamp", ["NaN", "Infinity", "-5", "1" + "0" * 400])
def test_absurd_time_ms_is_invalid(tmp_path, stamp):
    text = (':::MLLOG {"key": "run_start", "time_ms": 1600000000000, "metadata": {}}\n'
            f':::MLLOG {{"key": "run_stop", "time_ms": {stamp}, "metadata": {{"status": "success"}}}}\n')
    from mlpace.rules.validity import time_problem
    run = parse_result_text(text)
    assert run.run_stop_ms is None or time_problem(run.run_start_ms, run.run_stop_ms)


def test_a_declared_success_below_the_closed_target_counts_as_failed(tmp_path):
    """A log's `run_stop status: success` is a claim: the closed target decides (resnet 0.759)."""
    org = tmp_path / "training_v1.0" / "NVIDIA"
    system = "dgxa100_ngc21.05_mxnet"
    folder = org / "results" / system / "resnet"
    shutil.copytree(NVIDIA / "results" / system / "resnet", folder)
    (org / "systems").mkdir()
    shutil.copyfile(NVIDIA / "systems" / f"{system}.json", org / "systems" / f"{system}.json")
    path = folder / "result_2.txt"
    lines = path.read_text(encoding="latin-1").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if '"key": "eval_accuracy"' in line:
            head, record = line.split(":::MLLOG ", 1)
            data = json.loads(record)
            data["value"] = min(data["value"], 0.75)
            lines[i] = f"{head}:::MLLOG {json.dumps(data)}\n"
    path.write_text("".join(lines), encoding="latin-1")
    [result] = summarize(org).training
    run = next(r for r in result.runs if r.path.endswith("result_2.txt"))
    assert run.status == "success" and run.minutes is None
    # result_1 did not converge either: two failed runs of five, no score - as officially.
    assert result.minutes is None and result.score.failed == 2
    assert _official_score(folder, "resnet", "1.0.0") is None


def test_zero_result_logs_fail(tmp_path):
    org = _minigo_org(tmp_path)
    empty = org / "results" / MINIGO_SYSTEM / "resnet"
    empty.mkdir()
    summary = summarize(org)
    result = next(r for r in summary.training if r.benchmark == "resnet")
    assert result.minutes is None and not result.runs
    assert any("zero runs" in problem for _, problem in summary.problems)
    report = check(org, compliance=False, workers=1)
    failed = {(f.rule, Path(f.path).name) for f in report.findings if f.level == FAIL}
    assert ("run count", "resnet") in failed and ("olympic scoring", "resnet") in failed
    assert not report.ok


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 64,
                                     ':::MLLOG {"key": "run_start"}'.encode("utf-16")])
def test_an_unreadable_log_is_named_in_summarize_and_check(tmp_path, content):
    org = _minigo_org(tmp_path)
    bad = org / "results" / MINIGO_SYSTEM / "minigo" / "result_7.txt"
    bad.write_bytes(content)
    summary = summarize(org)
    assert any(path == str(bad) and problem.startswith("unreadable: no :::MLLOG lines")
               for path, problem in summary.problems)
    report = check(org, compliance=False, workers=1)
    assert any(f.level == FAIL and f.rule == "result file" and f.path.endswith("minigo/result_7.txt")
               for f in report.findings)


@pytest.mark.parametrize("value", ["nan", "-5", "1e400", "fast"])
def test_impossible_loadgen_metrics_are_invalid_and_json_stays_strict(tmp_path, value):
    import re

    from mlpace.results import importers
    from mlpace.results.store import Store
    org = tmp_path / "closed" / "Alibaba"
    shutil.copytree(FIXTURES / "inference_v1.1" / "closed" / "Alibaba", org)
    summary_file = (org / "results" / "A10x1_TRT" / "ssd-mobilenet" / "Offline" / "performance" /
                    "run_1" / "mlperf_log_summary.txt")
    summary_file.write_text(re.sub(r"Samples per second: \S+", f"Samples per second: {value}",
                                   summary_file.read_text()))
    summary = summarize(tmp_path)
    bad = [r for r in summary.inference_rows if "impossible Samples per second" in r["notes"]]
    assert len(bad) == 1 and bad[0]["value"] is None and bad[0]["valid"] is False
    assert (bad[0]["benchmark"], bad[0]["scenario"]) == ("ssd-mobilenet", "Offline")
    json.dumps(summary.to_json(), allow_nan=False)          # strict JSON: no NaN, no Infinity
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    report = importers.import_trees(store, [tmp_path])
    assert report.failures and str(summary_file) in report.failures[0]


def test_a_closed_result_whose_rcp_check_cannot_run_does_not_pass(tmp_path):
    """Closed logs of a benchmark the round has no RCP data for (gnmt in 1.0.0)."""
    from mlpace.rules.rcp import rcp_verdict
    org = tmp_path / "training_v1.0" / "NVIDIA"
    system = "dgxa100_ngc21.05_mxnet"
    folder = org / "results" / system / "gnmt"
    shutil.copytree(NVIDIA / "results" / system / "resnet", folder)
    for path in folder.glob("result_*.txt"):
        path.write_text(path.read_text(encoding="latin-1").replace(
            '"key": "submission_benchmark", "value": "resnet"', '"key": "submission_benchmark", "value": "gnmt"'),
            encoding="latin-1")
    (org / "systems").mkdir()
    shutil.copyfile(NVIDIA / "systems" / f"{system}.json", org / "systems" / f"{system}.json")
    verdict = rcp_verdict(folder, "1.0.0", "gnmt")
    assert not verdict.ran and "no RCP data" in verdict.message
    report = check(org, compliance=False, workers=1)
    [rcp] = [f for f in report.findings if f.rule == "RCP (official)"]
    assert rcp.level == FAIL and "needs a passing RCP check" in rcp.reason
    assert not report.ok


def test_an_inference_benchmark_folder_without_scenarios_is_a_problem_not_a_training_result(tmp_path):
    org = tmp_path / "closed" / "Alibaba"
    shutil.copytree(FIXTURES / "inference_v1.1" / "closed" / "Alibaba", org)
    (org / "results" / "A10x1_TRT" / "resnet50-empty").mkdir()
    summary = summarize(tmp_path)
    assert not summary.training and summary.inference_rows
    assert any(path.endswith("resnet50-empty") and "no LoadGen scenario folders" in problem
               for path, problem in summary.problems)
