"""Compliance audits: the audit.config LoadGen reads, and mlpace's verification of each test.

The verdict logic is tested on LoadGen summaries written here (exact numbers, no timing);
that LoadGen really applies each audit.config is tested on short runs of the toy task."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference import compliance  # noqa: E402
from mlpace.rules import inference as rules  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402
from mlpace.inference.settings import parse_conf  # noqa: E402
from mlpace.submission.loadgen_log import parse_detail_file  # noqa: E402

pytestmark = pytest.mark.timeout(120)

METRIC = {"Offline": "Samples per second", "Server": "Completed samples per second",
          "SingleStream": "90th percentile latency (ns)", "MultiStream": "99th percentile latency (ns)"}


def summary(path: Path, scenario: str, value: float, valid: bool = True) -> Path:
    """A LoadGen summary with the lines the verification reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("================================================\nMLPerf Results Summary\n"
                    "================================================\nSUT name : PySUT\n"
                    f"Scenario : {scenario}\nMode     : PerformanceOnly\n{METRIC[scenario]} : {value}\n"
                    f"Result is : {'VALID' if valid else 'INVALID'}\n")
    return path


# --- audit.config --------------------------------------------------------------------------

def test_audit_configs_are_mlcommons_v1_1_ones():
    for test in rules.COMPLIANCE_TESTS:
        parse_conf(compliance.audit_config(test, "resnet50"), test)     # LoadGen's key format
    test01 = parse_conf(compliance.audit_config("TEST01", "dlrm"))
    assert test01 == {"*.*.mode": "2", "*.*.accuracy_log_rng_seed": "720381539243781796",
                      "*.*.accuracy_log_sampling_target": "4096"}
    a = parse_conf(compliance.audit_config("TEST04-A", "resnet50"))
    b = parse_conf(compliance.audit_config("TEST04-B", "resnet50"))
    for scenario in ("SingleStream", "MultiStream", "Server", "Offline"):
        assert a[f"*.{scenario}.performance_issue_unique"] == "1"
        assert a[f"*.{scenario}.performance_issue_same"] == "0"
        assert b[f"*.{scenario}.performance_issue_same"] == "1"
        assert b[f"*.{scenario}.performance_issue_same_index"] == "3"
    assert parse_conf(compliance.audit_config("TEST05", "bert"))["*.*.qsl_rng_seed"] == "313588358309856706"


def test_tests_required_per_model_and_scenario_follow_the_v1_1_checker():
    assert rules.compliance_tests_of("resnet50", "Offline") == ["TEST01", "TEST04-A", "TEST04-B", "TEST05"]
    for model in ("bert", "dlrm", "rnnt"):
        assert rules.compliance_tests_of(model, "Server") == ["TEST01", "TEST05"]
    assert rules.compliance_tests_of("resnet50", "MultiStream") == ["TEST01", "TEST05"]


def test_an_unknown_test_is_a_clear_error():
    from mlpace.errors import MlpaceError
    with pytest.raises(MlpaceError, match="unknown compliance test 'TEST02'"):
        compliance.audit_config("TEST02", "resnet50")


@pytest.mark.parametrize("test", ["TEST01", "TEST04-B", "TEST05"])
def test_loadgen_applies_each_audit_config(tmp_path, test):
    options = RunOptions(out=tmp_path, quick=True, system="s", audit=test,
                         user_settings={"target_qps": 2000, "min_duration": 300})
    record = run_test(toy_task(total=64), "Offline", "performance", options)
    folder = tmp_path / "open/mlpace/compliance/s/toy/Offline" / test / "performance/run_1"
    assert Path(record["folder"]) == folder and record["audit"] == test
    assert (folder / "audit.config").read_text() == compliance.audit_config(test, "resnet50")
    values = parse_detail_file(folder / "mlperf_log_detail.txt")["values"]
    if test == "TEST01":
        assert values["effective_accuracy_log_sampling_target"] == 1024
        assert json.loads((folder / "mlperf_log_accuracy.json").read_text())   # responses logged
    elif test == "TEST04-B":
        assert values["effective_performance_issue_same"] is True
        assert values["effective_performance_issue_same_index"] == 3
    else:
        assert values["effective_qsl_rng_seed"] == rules.TEST05_SEEDS["qsl_rng_seed"]
        assert values["effective_schedule_rng_seed"] == rules.TEST05_SEEDS["schedule_rng_seed"]
    # an audit never rewrites the result's measurements
    assert not (tmp_path / "open/mlpace/measurements").exists()


def test_a_stale_audit_config_never_turns_a_result_into_an_audit(tmp_path):
    folder = tmp_path / "open/mlpace/results/s/toy/Offline/performance/run_1"
    folder.mkdir(parents=True)
    (folder / "audit.config").write_text(compliance.audit_config("TEST05", "resnet50"))
    run_test(toy_task(total=64), "Offline", "performance",
             RunOptions(out=tmp_path, quick=True, system="s", user_settings={"target_qps": 2000}))
    values = parse_detail_file(folder / "mlperf_log_detail.txt")["values"]
    assert values["effective_qsl_rng_seed"] == 1624344308455410291     # the v1.1 seed, not TEST05's
    assert not (folder / "audit.config").exists()


# --- performance verdicts ----------------------------------------------------------------

def test_performance_within_tolerance_passes_and_outside_fails(tmp_path):
    ref = summary(tmp_path / "ref.txt", "Offline", 1000.0)
    ok, lines = compliance.compare_performance(ref, summary(tmp_path / "a.txt", "Offline", 950.0), 0.10)
    assert ok and lines[-1] == "TEST PASS" and "reference score = 1000.0" in lines
    slow, lines = compliance.compare_performance(ref, summary(tmp_path / "b.txt", "Offline", 850.0), 0.10)
    assert not slow and lines[-1].startswith("TEST FAIL")
    fast = summary(tmp_path / "c.txt", "Offline", 1200.0)
    assert not compliance.compare_performance(ref, fast, 0.10)[0]                   # TEST01: both ways
    assert compliance.compare_performance(ref, fast, 0.05, one_sided=True)[0]       # TEST05: not slower


def test_latency_scenarios_count_a_higher_latency_as_worse(tmp_path):
    ref = summary(tmp_path / "ref.txt", "SingleStream", 2_000_000)
    worse = summary(tmp_path / "w.txt", "SingleStream", 2_300_000)
    better = summary(tmp_path / "b.txt", "SingleStream", 1_500_000)
    assert not compliance.compare_performance(ref, worse, 0.05, one_sided=True)[0]
    assert compliance.compare_performance(ref, better, 0.05, one_sided=True)[0]
    short = summary(tmp_path / "s.txt", "SingleStream", 150_000)         # under 200 us: 20 % allowed
    assert compliance.compare_performance(short, summary(tmp_path / "t.txt", "SingleStream", 170_000), 0.05)[0]


def test_an_invalid_run_fails_the_audit(tmp_path):
    ref = summary(tmp_path / "ref.txt", "Server", 100.0, valid=False)
    ok, lines = compliance.compare_performance(ref, summary(tmp_path / "t.txt", "Server", 100.0), 0.1)
    assert not ok and lines[-1] == "TEST FAIL: Reference results are invalid"
    ok, lines = compliance.compare_performance(summary(tmp_path / "r.txt", "Server", 100.0),
                                               summary(tmp_path / "u.txt", "Server", 100.0, False), 0.1)
    assert not ok and lines[-1] == "TEST FAIL: Test results are invalid"


def test_test04_catches_a_caching_sut(tmp_path):
    a = summary(tmp_path / "a.txt", "Offline", 1000.0, valid=False)     # TEST04-A is short: INVALID is normal
    assert compliance.compare_test04(a, summary(tmp_path / "same.txt", "Offline", 1050.0))[0]
    assert compliance.compare_test04(a, summary(tmp_path / "slow.txt", "Offline", 500.0))[0]
    cached, lines = compliance.compare_test04(a, summary(tmp_path / "fast.txt", "Offline", 1500.0))
    assert not cached and "TEST04-B score = 1500.0" in lines
    ss = summary(tmp_path / "ssa.txt", "SingleStream", 1_000_000)
    assert not compliance.compare_test04(ss, summary(tmp_path / "ssb.txt", "SingleStream", 500_000))[0]
    assert compliance.compare_test04(ss, summary(tmp_path / "ssc.txt", "SingleStream", 3_000_000))[0]


def test_verify_test04_writes_its_file_in_test04_a(tmp_path):
    for test, value in (("TEST04-A", 1000.0), ("TEST04-B", 2000.0)):
        summary(tmp_path / test / "performance/run_1/mlperf_log_summary.txt", "Offline", value)
    assert compliance.verify_test04(tmp_path) == {"passed": False}
    text = (tmp_path / "TEST04-A/verify_performance.txt").read_text()
    assert text.endswith("TEST FAIL: Test score invalid\n") and "TEST PASS" not in text
    assert not (tmp_path / "TEST04-B/verify_performance.txt").exists()     # the checker wants none there


# --- TEST01 accuracy ---------------------------------------------------------------------

def accuracy_log(path: Path, responses: dict[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"seq_id": n, "qsl_idx": i, "data": np.array([v], np.int32).tobytes().hex()}
                                for n, (i, v) in enumerate(responses.items())]))
    return path


def build_test01_tree(tmp_path, audit_responses):
    task = toy_task(total=16)
    right = {i: int(task.load(i)[1:].sum()) % 2 for i in range(16)}
    results = tmp_path / "results"
    accuracy_log(results / "accuracy/mlperf_log_accuracy.json", right)
    summary(results / "performance/run_1/mlperf_log_summary.txt", "Offline", 1000.0)
    out = tmp_path / "TEST01"
    accuracy_log(out / "performance/run_1/mlperf_log_accuracy.json", audit_responses(right))
    summary(out / "performance/run_1/mlperf_log_summary.txt", "Offline", 990.0)
    return task, results, out


def test_test01_passes_when_performance_mode_answers_as_accuracy_mode(tmp_path):
    # indices 16.. are the data set presented a second time (performance sample count > data set)
    task, results, out = build_test01_tree(tmp_path, lambda right: {i + 16 * (i % 2): v for i, v in right.items()})
    verdict = compliance.verify_test01(task, 0.99, results, out)
    assert verdict["passed"] and verdict["counts"]["num_perf_log_qsl_idx_match"] == 16
    assert "TEST PASS" in (out / "verify_accuracy.txt").read_text()
    assert (out / "verify_performance.txt").read_text().endswith("TEST PASS\n")
    assert sorted(p.name for p in (out / "accuracy").iterdir()) == ["accuracy.txt", "mlperf_log_accuracy.json"]
    assert (out / "accuracy/accuracy.txt").read_text().startswith("accuracy=100.000%, good=16, total=16\n")
    assert not (out / "performance/run_1/mlperf_log_accuracy.json").exists()    # moved to accuracy/


def test_test01_fails_a_sut_that_answers_differently_in_performance_mode(tmp_path):
    task, results, out = build_test01_tree(tmp_path, lambda right: {i: 1 - v for i, v in right.items()})
    verdict = compliance.verify_test01(task, 0.99, results, out)
    assert not verdict["passed"] and not verdict["accuracy_passed"]
    text = (out / "verify_accuracy.txt").read_text()
    assert "TEST PASS" not in text and "num_perf_log_data_mismatch = 16" in text
    assert (out / "accuracy/baseline_accuracy.txt").read_text().startswith("accuracy=100.000%")
    assert (out / "accuracy/compliance_accuracy.txt").read_text().startswith("accuracy=0.000%")
