"""Peak search on a toy SUT of known capacity (a 20 ms sleep per sample, one worker: <= 50/s).

The toy runs as "bert" (p99 bound 130 ms), so the scheduling jitter of a busy CI machine is
small beside the service time and the bound."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference import peak  # noqa: E402
from mlpace.inference.runner import RunOptions  # noqa: E402

pytestmark = pytest.mark.timeout(150)


@pytest.mark.slow
def test_server_peak_is_bracketed_below_capacity(tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 600, "min_query_count": 20})
    task = toy_task(total=64, delay_s=0.02, model="bert")
    options = RunOptions(out=tmp_path, quick=True, workers=1, max_batch=1)
    result = peak.find_peak_server(task, options, start_qps=20)
    goods = [q for q, good in result.trials if good]
    bads = [q for q, good in result.trials if not good]
    assert goods and bads, result.trials                # the bound was bracketed
    assert 10 <= result.best_qps <= 52                  # never above what one 20 ms worker can serve
    assert result.confirmed is not None and result.confirmed["scenario"] == "Server"
    assert (tmp_path / "peak-search").is_dir()          # search runs kept apart from the result


def test_offline_peak_uses_the_measured_rate(tmp_path):
    task = toy_task(total=64)
    options = RunOptions(out=tmp_path, quick=True, workers=1, max_batch=8)
    result = peak.find_peak_offline(task, options, start_qps=500)
    assert result.best_qps > 0
    assert float(result.confirmed["settings"]["target_qps"]) == pytest.approx(result.best_qps, rel=1e-3)


def test_a_sut_that_never_meets_the_bound_gives_up_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 300, "min_query_count": 20})
    task = toy_task(total=16, delay_s=0.03)            # 30 ms per sample > resnet50's 15 ms bound
    result = peak.find_peak_server(task, RunOptions(out=tmp_path, quick=True, workers=1, max_batch=1),
                                   start_qps=20)
    assert result.best_qps == 0.0 and result.confirmed is None
    assert "cannot meet the Server latency bound: its fastest answer took" in result.error
    # one look far lower (the first run may have queued everything from its start), then no more
    assert len(result.trials) == 2 and result.trials[1][0] == pytest.approx(20 / 16)


def test_a_full_length_run_that_is_not_valid_is_never_the_peak(tmp_path, monkeypatch):
    # The toy meets the bound in every short run, then slows past it in the full-length ones:
    # the search must try a few lower rates, keep each failed run's logs, and fail.
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 300, "min_query_count": 20})
    state = {"slow": False}
    task = toy_task(total=16, model="bert")  # a 130 ms bound: scheduling noise stays far below it
    inner = task.predict

    def predict(samples):
        if state["slow"]:
            time.sleep(0.15)                 # over the bound at any rate
        return inner(samples)
    task.predict = predict
    real_run_test = peak.run_test

    def run_test(task, scenario, mode, options):
        state["slow"] = not options.quick    # short runs are quick ones
        return real_run_test(task, scenario, mode, options)
    monkeypatch.setattr(peak, "run_test", run_test)
    options = RunOptions(out=tmp_path, workers=1, max_batch=1, test_minimums={"min_duration": 300, "min_query_count": 20})
    result = peak.find_peak_server(task, options, start_qps=20, ceiling=40)
    assert result.error and "VALID at full length" in result.error
    assert result.full_runs == peak.CONFIRM_TRIES and not result.confirmed["valid"]
    assert result.short_runs == len(result.trials) >= 2
    search = tmp_path / "peak-search/toy/Server"
    kept = sorted(p.name for p in search.iterdir())
    assert len(kept) == result.short_runs + peak.CONFIRM_TRIES - 1          # every run's logs kept
    assert sum("invalid" in name for name in kept) == peak.CONFIRM_TRIES - 1
    for folder in search.iterdir():
        assert list(folder.rglob("mlperf_log_summary.txt")), folder
    assert "full-length runs" in result.report()


def test_a_valid_full_length_run_ends_the_search(tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 300, "min_query_count": 20})
    # LoadGen's early stopping needs some 500 queries under the p99 bound before it says VALID,
    # so at 600 queries one stall of the machine longer than the bound ends a full run INVALID:
    # with bert's 130 ms, 3 full runs in a row did once under load. The toy runs as rnnt (a
    # 1,000 ms bound); batches of up to 8 per 1 ms are still far above the 400 QPS ceiling.
    task = toy_task(total=16, delay_s=0.001, model="rnnt")
    options = RunOptions(out=tmp_path, workers=1, max_batch=8,
                         test_minimums={"min_duration": 300, "min_query_count": 600})
    result = peak.find_peak_server(task, options, start_qps=200, ceiling=400)
    assert result.error is None and result.confirmed["valid"] and result.full_runs >= 1
    assert result.confirmed["folder"].endswith("results/local/toy/Server/performance/run_1")
    assert 0 < result.best_qps <= 1.05 * 400


def test_server_batches_fit_inside_the_latency_bound():
    from mlpace.inference.runner import Calibration, server_max_batch
    calibration = Calibration(single_latency_s=0.001, batch_rate=1000.0)   # 1 ms alone, 1 ms/sample batched
    assert server_max_batch(toy_task(model="resnet50"), calibration) == 4        # 0.3 x 15 ms
    assert server_max_batch(toy_task(model="bert"), calibration, limit=64) == 39   # 0.3 x 130 ms
    assert server_max_batch(toy_task(model="bert"), calibration) == 8            # the task's own limit
    slow = Calibration(single_latency_s=0.02, batch_rate=50.0)
    assert server_max_batch(toy_task(model="resnet50"), slow) == 1


def test_the_server_cap_is_the_most_efficient_batch_the_bound_allows():
    from mlpace.inference.runner import most_efficient_batch
    # A fixed cost per batch: the bigger the batch, the cheaper a sample; the cap is the largest.
    assert most_efficient_batch(toy_task(total=16, delay_s=0.004), 8) == 8
    # A batch that costs more per sample the bigger it grows (dlrm-mini on onnxruntime):
    # a burst must not buy the worker a slow batch; the cap is the cheapest size.
    task = toy_task(total=16)
    inner = task.predict

    def predict(samples):
        time.sleep(0.0005 * len(samples) ** 2)
        return inner(samples)
    task.predict = predict
    assert most_efficient_batch(task, 8) == 1
