"""The Server peak search: the peak it reports is a VALID full run, every trial keeps its logs,
and a first estimate from the Offline rate keeps the search to a few runs.

The toy runs as "bert" (p99 bound 130 ms) with batches of up to 8 per 1 ms, so its capacity is
far above the 400 QPS ceiling and a busy CI machine cannot push a run over the bound."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference import peak  # noqa: E402
from mlpace.inference.runner import RunOptions  # noqa: E402
from mlpace.submission.loadgen_log import parse_summary_file  # noqa: E402

pytestmark = pytest.mark.timeout(150)

CEILING = 400.0       # the Offline rate the search starts from
# LoadGen's early stopping wants some 500 queries under the p99 bound before it says VALID.
SHORTENED = {"min_duration": 300, "min_query_count": 600}


def toy_slow_in_first_full_runs(monkeypatch, slow_full_runs: int):
    """The toy, over the bound at any rate in its first `slow_full_runs` full-length runs."""
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 300, "min_query_count": 20})
    task = toy_task(total=16, delay_s=0.001, model="bert")
    state = {"slow": False, "full_runs": 0}
    inner = task.predict

    def predict(samples):
        if state["slow"]:
            time.sleep(0.15)
        return inner(samples)
    task.predict = predict
    real_run_test = peak.run_test

    def run_test(task, scenario, mode, options):
        full = not options.quick                  # the search's short runs are quick ones
        state["full_runs"] += full
        state["slow"] = full and state["full_runs"] <= slow_full_runs
        return real_run_test(task, scenario, mode, options)
    monkeypatch.setattr(peak, "run_test", run_test)
    return task


@pytest.mark.slow
def test_the_peak_is_the_valid_full_run_and_every_trial_keeps_its_logs(tmp_path, monkeypatch):
    task = toy_slow_in_first_full_runs(monkeypatch, slow_full_runs=1)
    options = RunOptions(out=tmp_path, workers=1, max_batch=8, test_minimums=SHORTENED)
    result = peak.find_peak_server(task, options, 0.5 * CEILING, ceiling=CEILING)

    assert result.error is None and result.full_runs == 2
    final = Path(result.confirmed["folder"])
    assert final == tmp_path / "open/mlpace/results/local/toy/Server/performance/run_1"
    summary = parse_summary_file(final / "mlperf_log_summary.txt")
    assert summary["result"] == "VALID" and result.confirmed["valid"]
    # The peak is the rate of that VALID run, a step below the one that was not.
    assert float(result.confirmed["settings"]["target_qps"]) == pytest.approx(result.best_qps, rel=1e-3)
    searched = max(q for q, good in result.trials if good)
    assert result.best_qps == pytest.approx(searched * peak.CONFIRM_MARGIN * peak.STEP_DOWN, rel=1e-3)

    kept = sorted((tmp_path / "peak-search/toy/Server").iterdir())
    assert len(kept) == result.short_runs + 1                       # every short run + the INVALID one
    for folder in kept:
        summaries = list(folder.rglob("mlperf_log_summary.txt"))
        assert len(summaries) == 1 and list(folder.rglob("user.conf")), folder
    invalid = [f for f in kept if "invalid" in f.name]
    assert len(invalid) == 1
    assert parse_summary_file(next(invalid[0].rglob("mlperf_log_summary.txt")))["result"] == "INVALID"
    assert "2 full-length runs" in result.report()


def test_a_first_estimate_from_the_offline_rate_keeps_the_search_short(tmp_path, monkeypatch):
    task = toy_slow_in_first_full_runs(monkeypatch, slow_full_runs=0)
    options = RunOptions(out=tmp_path, workers=1, max_batch=8, test_minimums=SHORTENED)
    result = peak.find_peak_server(task, options, 0.5 * CEILING, ceiling=CEILING)
    assert result.error is None and result.full_runs == 1
    assert result.trials[0][0] == pytest.approx(peak.FIRST_ESTIMATE * CEILING)
    assert max(q for q, _ in result.trials) <= CEILING              # never above the Offline rate
    if result.trials[0][1]:      # the estimate held (a very busy machine may make it miss)
        assert result.short_runs <= 1 + peak.BISECT_STEPS
    assert result.short_runs <= 1 + peak.LOWER_STEPS + peak.BISECT_STEPS
    assert f"{result.short_runs} short runs" in result.report()


def test_an_estimate_that_misses_is_followed_by_looks_a_step_lower(tmp_path, monkeypatch):
    # One worker at 10 ms a sample serves 100/s; the estimate (0.8 x 200) queues 60 more a
    # second, so its run misses bert's 130 ms bound. The next look is 15 % lower, where a
    # Server peak near the estimate is found, not a quarter of it.
    monkeypatch.setattr(peak, "SEARCH_SETTINGS", {"min_duration": 300, "min_query_count": 20})
    task = toy_task(total=16, delay_s=0.01, model="bert")
    options = RunOptions(out=tmp_path, quick=True, workers=1, max_batch=1)
    result = peak.find_peak_server(task, options, 100.0, ceiling=200.0)
    first, second = result.trials[0], result.trials[1]
    assert first == (pytest.approx(160.0), False)
    assert second[0] == pytest.approx(peak.STEP_LOWER * 160.0)
    assert 0 < result.best_qps < 160.0

