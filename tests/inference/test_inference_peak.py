"""Peak search on a toy SUT of known capacity (a 20 ms sleep per sample, one worker: <= 50/s).

The toy runs as "bert" (p99 bound 130 ms), so the scheduling jitter of a busy CI machine is
small beside the service time and the bound."""

import sys
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
    assert len(result.trials) == 1                      # no slow low-rate trials once hopeless
