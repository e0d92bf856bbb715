"""The LoadGen glue end to end on a numpy toy task: scenarios, accuracy mode, faults, layout."""

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference.runner import RunOptions, run_test  # noqa: E402
from mlpace.rules import inference as rules  # noqa: E402
from mlpace.submission.loadgen_log import parse_summary_file  # noqa: E402

pytestmark = pytest.mark.timeout(120)

FAST = {"target_qps": 400, "target_latency": 0.5}


def options(tmp_path, **kw):
    kw.setdefault("user_settings", dict(FAST))
    return RunOptions(out=tmp_path, quick=True, system="testsys", **kw)


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_each_scenario_runs_in_the_official_layout(tmp_path, scenario):
    record = run_test(toy_task(), scenario, "performance", options(tmp_path))
    folder = tmp_path / "open/mlpace/results/testsys/toy" / scenario / "performance/run_1"
    assert Path(record["folder"]) == folder
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlpace_summary.json"):
        assert (folder / name).is_file()
    measurements = tmp_path / "open/mlpace/measurements/testsys/toy" / scenario
    assert "toy" not in (measurements / "user.conf").read_text()     # keyed by LoadGen model name
    assert (measurements / "mlperf.conf").read_text().startswith("# MLPerf Inference v1.1")
    summary = parse_summary_file(folder / "mlperf_log_summary.txt")
    assert summary["scenario"] == scenario
    assert record["error"] is None and record["value"] == summary["value"] and record["value"] > 0
    assert record["valid_for_submission"] is False                   # quick runs never are
    assert json.loads((folder / "mlpace_summary.json").read_text())["scenario"] == scenario


def test_accuracy_mode_scores_every_sample_and_writes_accuracy_txt(tmp_path):
    record = run_test(toy_task(total=50), "Offline", "accuracy", options(tmp_path))
    assert record["result"] == "PASS"
    assert record["accuracy"]["samples"] == 50 and record["accuracy"]["score"] == 1.0
    text = (Path(record["folder"]) / "accuracy.txt").read_text()
    assert text.startswith("accuracy=100.000%, good=50, total=50\n")   # accuracy-imagenet.py's form
    assert re.match(rules.ACCURACY_PATTERNS["acc"], text)                # what the official checker reads
    assert "result=" not in text and "\nhash=" in text                 # no verdict of its own
    entries = json.loads((Path(record["folder"]) / "mlperf_log_accuracy.json").read_text())
    assert sorted(e["qsl_idx"] for e in entries) == list(range(50))


def test_accuracy_below_target_fails(tmp_path):
    # every 10th answer is scored wrong: 0.9 < 0.99 x 1.0
    record = run_test(toy_task(total=50, wrong_every=10), "SingleStream", "accuracy", options(tmp_path))
    assert record["result"] == "FAIL" and not record["accuracy"]["passed"]
    assert "result=" not in (Path(record["folder"]) / "accuracy.txt").read_text()
    assert json.loads((Path(record["folder"]) / "mlpace_summary.json").read_text())["accuracy"]["passed"] is False


def test_offline_uses_dynamic_batches(tmp_path):
    sizes = []
    task = toy_task(total=64)
    inner = task.predict
    task.predict = lambda samples: sizes.append(len(samples)) or inner(samples)
    run_test(task, "Offline", "performance", options(tmp_path, workers=1, max_batch=8))
    assert max(sizes) == 8


def test_single_stream_never_batches(tmp_path):
    sizes = []
    task = toy_task(total=64)
    inner = task.predict
    task.predict = lambda samples: sizes.append(len(samples)) or inner(samples)
    run_test(task, "SingleStream", "performance", options(tmp_path, max_batch=8))
    assert set(sizes) == {1}


def test_a_raising_backend_ends_the_run_with_an_error_and_readable_logs(tmp_path):
    start = time.monotonic()
    record = run_test(toy_task(fail_after=2), "Server", "performance", options(tmp_path))
    assert time.monotonic() - start < 30
    assert record["result"] == "ERROR" and "ValueError: toy backend failure" in record["error"]
    assert record["valid"] is False
    summary = parse_summary_file(Path(record["folder"]) / "mlperf_log_summary.txt")
    assert summary["scenario"] == "Server"


def test_a_hung_backend_is_ended_by_the_watchdog(tmp_path):
    start = time.monotonic()
    record = run_test(toy_task(hang=True), "Offline", "performance", options(tmp_path, timeout_s=2))
    assert time.monotonic() - start < 20
    assert record["result"] == "ERROR" and record["error"].startswith("watchdog")
    assert (Path(record["folder"]) / "mlperf_log_summary.txt").is_file()


def test_a_sut_far_slower_than_the_requested_rate_is_bounded(tmp_path):
    # 20 ms per batch of one, asked for 400 QPS: LoadGen would queue for a long time
    start = time.monotonic()
    record = run_test(toy_task(delay_s=0.02), "Server", "performance",
                      options(tmp_path, workers=1, max_batch=1, timeout_s=4))
    assert time.monotonic() - start < 30
    assert record["valid"] is False
    assert record["result"] in ("INVALID", "ERROR")


def test_accuracy_log_decoding_matches_outputs(tmp_path):
    from mlpace.inference.runner import _decode_accuracy_log
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps([{"seq_id": 0, "qsl_idx": 3, "data": np.array([7, 9], np.int32).tobytes().hex()}]))
    decoded = _decode_accuracy_log(path, "int32")
    assert list(decoded) == [3] and decoded[3].tolist() == [7, 9]


def test_ctrl_c_ends_the_test_and_leaves_loadgen_logs_complete(tmp_path):
    import os
    import signal
    import threading

    # A real Ctrl-C, sent once LoadGen is running and waits on the hung SUT (a timer could
    # fire before LoadGen began on a busy machine: then there are no logs to complete).
    task, once = toy_task(hang=True), threading.Lock()
    hang = task.predict

    def interrupted(samples):
        if once.acquire(blocking=False):
            os.kill(os.getpid(), signal.SIGINT)
        return hang(samples)
    task.predict = interrupted
    with pytest.raises(KeyboardInterrupt):
        run_test(task, "Server", "performance", options(tmp_path))
    folder = tmp_path / "open/mlpace/results/testsys/toy/Server/performance/run_1"
    assert parse_summary_file(folder / "mlperf_log_summary.txt")["result"] == "INVALID"


def test_quick_query_counts_follow_the_model_speed():
    from mlpace.inference.runner import Calibration, default_user_settings
    slow = Calibration(single_latency_s=1.0, batch_rate=1.0)       # a second per sample
    fast = Calibration(single_latency_s=0.001, batch_rate=1000.0)
    assert default_user_settings("SingleStream", slow, quick=True)["min_query_count"] == 8
    assert default_user_settings("Offline", fast, quick=True)["min_query_count"] == 64
    assert "min_query_count" not in default_user_settings("Offline", fast)   # official runs keep the rules
    assert default_user_settings("Offline", fast)["target_qps"] == 1250.0
    assert default_user_settings("Offline", fast, quick=True)["target_qps"] == 3000.0
    assert default_user_settings("Server", fast)["target_qps"] == 500.0


def test_answers_come_from_their_own_thread_except_in_single_stream(tmp_path, monkeypatch):
    import threading
    from mlpace.inference.sut import BatchingSUT, policy_for
    assert not policy_for("SingleStream", 8).answer_thread
    assert all(policy_for(s, 8).answer_thread for s in ("MultiStream", "Server", "Offline"))
    seen = set()
    complete = BatchingSUT._complete

    def recording(self, ids, outputs):
        seen.add(threading.current_thread().name)
        return complete(self, ids, outputs)
    monkeypatch.setattr(BatchingSUT, "_complete", recording)
    record = run_test(toy_task(total=64), "Offline", "accuracy", options(tmp_path))
    assert record["accuracy"]["samples"] == 64 and seen == {"mlpace-sut-answers"}
    seen.clear()
    run_test(toy_task(total=64), "SingleStream", "performance", options(tmp_path))
    assert seen == {"mlpace-sut-0"}


def test_an_imported_result_is_stored_with_the_scale_the_run_declared(tmp_path):
    """Every mlpace_summary.json states scale, division, round and date; the results store
    files the imported result under that scale (not 'unknown')."""
    from mlpace.inference.suite import write_system_description
    from mlpace.results import queries
    from mlpace.results.importers import import_trees
    from mlpace.results.store import open_store

    run = options(tmp_path / "out", scale="mini")
    record = run_test(toy_task(), "Offline", "performance", run)
    written = json.loads((Path(record["folder"]) / "mlpace_summary.json").read_text())
    assert {k: written[k] for k in ("scale", "division", "round")} == {
        "scale": "mini", "division": "open", "round": "v1.1"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", written["date"])
    write_system_description(run)
    store = open_store(tmp_path / "store.sqlite")
    report = import_trees(store, [tmp_path / "out"])
    assert report.failures == [] and report.submissions == 1
    with store.read() as conn:
        rows = queries.inference_results(conn)
    assert [(r["benchmark"], r["scenario"], r["scale"]) for r in rows] == [("toy", "Offline", "mini")]


def test_a_server_worker_takes_what_is_waiting_and_never_waits_for_more():
    """Greedy Server batching: a worker that waited for its batch to fill idled while the
    samples aged (resnet50-mini at 2,000 QPS: 1 of 6 runs met the p99 with a 2 ms wait, 5 of 6 without)."""
    import threading
    from mlpace.inference.sut import BatchingSUT, SampleLibrary, policy_for

    class Recording(threading.Condition):
        waits: list = []

        def wait(self, timeout=None):
            self.waits.append(timeout)
            return super().wait(timeout)

    sut = BatchingSUT(SampleLibrary(8, 8, lambda i: i), lambda xs: xs, policy_for("Server", 8))
    sut._ready = Recording()
    sut.issue_queries([10, 11], [0, 1])
    assert sut._next_batch() == ([10, 11], [0, 1]) and Recording.waits == []   # 2 < 8, no wait
    sut.issue_queries(list(range(20, 30)), list(range(8)) + [0, 1])
    assert sut._next_batch()[0] == list(range(20, 28))                  # the backlog, up to the cap
    assert sut._next_batch()[0] == [28, 29] and Recording.waits == []


def test_warm_up_runs_every_batch_size_a_server_run_may_use():
    """oneDNN builds each new input shape on first use: a cold size made a Server batch late."""
    from mlpace.inference.runner import warm_up
    sizes = []
    task = toy_task(total=50)
    inner = task.predict

    def recording(samples):
        sizes.append(len(samples))
        return inner(samples)
    task.predict = recording
    warm_up(task, 20)
    assert sizes == list(range(1, 21))
    sizes.clear()
    warm_up(toy_task(total=5), 20)                   # never more samples than the task has
    warm_up(task, 0)
    assert sizes == []
