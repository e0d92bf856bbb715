"""`infer --submission` end to end on the toy task, with the v1.1 minimums shrunk for tests.

`RunOptions.test_minimums` is the test-only override (never a CLI option): the whole flow —
short measurements, the "full-length" run, accuracy, the audits and their verification —
runs in seconds, and every record says it is not valid for submission. The Offline toy
answers at a steady rate (`steady`), so that the measured rate holds in the runs after it."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference import peak  # noqa: E402
from mlpace.inference.compliance import audit_config  # noqa: E402
from mlpace.inference.runner import RunOptions, calibrate  # noqa: E402
from mlpace.inference.suite import run_submission  # noqa: E402
from mlpace.submission.loadgen_log import parse_detail_file, parse_summary_file  # noqa: E402

pytestmark = pytest.mark.timeout(180)

# Enough queries that LoadGen's early stopping rarely objects on a busy machine.
SHRUNK = {"min_duration": 400, "min_query_count": 200}


def submit(tmp_path, scenario, task, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 400, "min_query_count": 40})
    lines = []
    options = RunOptions(out=tmp_path, system="sys", workers=1, test_minimums=dict(SHRUNK))
    records = run_submission(task, scenario, options, calibrate(task), lines.append)
    return records, lines


IDLE_S = 0.1


def steady(task, rate: float):
    """The task answering at `rate` samples/s in every window of a run, however busy the machine.

    A fixed sleep per batch does not do it: the wake-up waits for a CPU, so on a loaded machine
    the rate swung from 2000 to 3300 to 1600 samples/s between 0.4 s runs, and a run 15 % faster
    than the short run that set its target_qps ends before min_duration (INVALID, twice: no
    accuracy run, no audits). Here each batch is answered at its place in a schedule: a late
    wake-up is caught up on the next batches (at most half of each one's time, so that no call
    is instant: calibrate() keeps the fastest); after an idle pause the schedule starts afresh."""
    inner, due = task.predict, [float("-inf")]

    def predict(samples):
        now, quota = time.monotonic(), len(samples) / rate
        due[0] = max(due[0] + quota, now + quota / 2) if now - due[0] < IDLE_S else now + quota
        time.sleep(max(0.0, due[0] - time.monotonic()))
        return inner(samples)
    task.predict = predict
    return task


def verdict_line(path: Path) -> str:
    verdicts = [line for line in path.read_text().splitlines() if line.startswith("TEST ")]
    assert len(verdicts) == 1, path.read_text()
    return verdicts[0]


def test_offline_submission_writes_every_file_the_checker_reads(tmp_path):
    records, lines = submit(tmp_path, "Offline", steady(toy_task(total=64), rate=500.0))
    root = tmp_path / "open/mlpace"
    result = root / "results/sys/toy/Offline"
    audits = root / "compliance/sys/toy/Offline"
    for path in ("performance/run_1/mlperf_log_summary.txt", "performance/run_1/mlperf_log_detail.txt",
                 "accuracy/mlperf_log_accuracy.json", "accuracy/accuracy.txt"):
        assert (result / path).is_file(), path
    for path in ("TEST01/verify_accuracy.txt", "TEST01/verify_performance.txt",
                 "TEST01/accuracy/mlperf_log_accuracy.json", "TEST01/accuracy/accuracy.txt",
                 "TEST04-A/verify_performance.txt", "TEST05/verify_performance.txt"):
        assert (audits / path).is_file(), path
    for test in ("TEST01", "TEST04-A", "TEST04-B", "TEST05"):
        run = audits / test / "performance/run_1"
        assert (run / "mlperf_log_summary.txt").is_file() and (run / "mlperf_log_detail.txt").is_file()
        assert (run / "audit.config").read_text() == audit_config(test, "resnet50")

    by_name = {r.get("audit") or r["mode"]: r for r in records}
    assert list(by_name) == ["performance", "accuracy", "TEST01", "TEST04-A", "TEST04-B", "TEST05"]
    performance = by_name["performance"]
    assert performance["valid"] and not performance["valid_for_submission"]   # shrunk: never submittable
    assert by_name["accuracy"]["result"] == "PASS"
    # The responses are deterministic: TEST01's accuracy check passes.
    assert verdict_line(audits / "TEST01/verify_accuracy.txt") == "TEST PASS"
    # Each audit's PASS/FAIL is what its verify file says (speed verdicts depend on the machine).
    for test, file in (("TEST01", "TEST01/verify_performance.txt"), ("TEST04-A", "TEST04-A/verify_performance.txt"),
                       ("TEST05", "TEST05/verify_performance.txt")):
        said = verdict_line(audits / file) == "TEST PASS"
        assert (by_name[test]["result"] == "PASS") == (said and (test != "TEST01" or by_name[test]["compliance"]["accuracy_passed"]))
    assert by_name["TEST04-B"]["result"] == by_name["TEST04-A"]["result"]

    # Settings: measured, not guessed; the v1.1 performance sample count on a 64-sample data set.
    user_conf = (root / "measurements/sys/toy/Offline/user.conf").read_text()
    measured = [line for line in lines if line.startswith("  short Offline run:")]
    assert measured and "resnet50.Offline.target_qps" in user_conf
    detail = parse_detail_file(result / "performance/run_1/mlperf_log_detail.txt")["values"]
    assert detail["effective_performance_sample_count"] == 1024
    assert parse_summary_file(result / "performance/run_1/mlperf_log_summary.txt")["valid"]
    # The estimate comes before the long runs.
    estimate = next(i for i, line in enumerate(lines) if " estimated " in line)
    assert estimate < next(i for i, line in enumerate(lines) if line.startswith("  Offline at "))
    assert all(name in lines[estimate] for name in ("performance", "accuracy", "TEST01", "TEST04-A", "TEST05"))


def test_bert_has_no_test04(tmp_path):
    records, _ = submit(tmp_path, "SingleStream", toy_task(total=32, delay_s=0.001, model="bert"))
    assert [r.get("audit") for r in records] == [None, None, "TEST01", "TEST05"]
    audits = tmp_path / "open/mlpace/compliance/sys/toy/SingleStream"
    assert sorted(p.name for p in audits.iterdir()) == ["TEST01", "TEST05"]
    assert verdict_line(audits / "TEST01/verify_accuracy.txt") == "TEST PASS"


def test_no_audits_against_a_result_that_is_not_valid(tmp_path, monkeypatch):
    # 30 ms per sample can never meet resnet50's 15 ms Server bound: no VALID result, so
    # neither the accuracy run nor the audits run (they would compare against nothing).
    records, lines = submit(tmp_path, "Server", toy_task(total=16, delay_s=0.03), monkeypatch)
    assert len(records) == 1 and records[0]["result"] == "ERROR"
    assert "cannot meet the Server latency bound" in records[0]["error"]
    assert not (tmp_path / "open/mlpace/compliance").exists()
    assert any(" estimated " in line for line in lines)


def test_submission_and_quick_do_not_mix(tmp_path, capsys):
    from mlpace.cli import main
    code = main(["infer", "resnet50", "--scenario", "Offline", "--submission", "--quick",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith("error: --submission runs at full length")


def test_the_estimate_follows_the_v1_1_minimums():
    from mlpace.inference.suite import estimate_submission_s
    task = toy_task(total=64)                                       # runs as resnet50
    offline = estimate_submission_s(task, "Offline", RunOptions(out=Path("x"), user_settings={"target_qps": 100.0}), 100.0)
    assert offline["performance"] == pytest.approx(660.0)          # 1.1 x 600 s at the asked rate
    assert offline["TEST01"] == offline["TEST05"] == offline["TEST04-B"] == offline["performance"]
    assert offline["TEST04-A"] == pytest.approx(1024 / 100.0)      # one query of the performance samples
    assert offline["accuracy"] == pytest.approx(64 / 100.0)
    server = estimate_submission_s(task, "Server", RunOptions(out=Path("x"), user_settings={"target_qps": 100.0}), 150.0)
    assert server["performance"] == pytest.approx(270336 / 100.0)  # the query count, not 600 s, decides
    stream = estimate_submission_s(task, "SingleStream", RunOptions(out=Path("x"), user_settings={"target_latency": 10.0}), 100.0)
    assert stream["performance"] == stream["TEST04-A"] == pytest.approx(600.0)
    bert = estimate_submission_s(toy_task(model="bert"), "Offline", RunOptions(out=Path("x"), user_settings={"target_qps": 100.0}), 100.0)
    assert "TEST04-A" not in bert and "TEST04-B" not in bert
