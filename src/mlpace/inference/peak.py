"""Peak search: the highest Server target QPS (and the Offline expected QPS) that stays VALID.

Server: short LoadGen runs (a few seconds each) bracket the rate, starting from the
calibrated throughput: grow the rate while the latency bound holds, then bisect between the
last good and the first bad rate. A short run counts as good when LoadGen reports
"Performance constraints satisfied" and the SUT had no error (short runs cannot satisfy the
official minimum duration, so their overall VALID/INVALID is not the test). The best rate is
then confirmed with a full run; if that run is INVALID the rate steps down 10 % and is
confirmed again, a few times at most.

Offline: one short run measures the throughput; the full run then uses it as expected QPS
(LoadGen sizes the single Offline query from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from mlpace.inference.runner import RunOptions, run_test
from mlpace.inference.task import InferenceTask

SEARCH_SETTINGS = {"min_duration": 2000, "min_query_count": 100}
SEARCH_SECONDS = 2.0        # a search run issues about this many seconds of queries
BISECT_STEPS = 5
MAX_HALVINGS = 3            # below start / 4**3 the SUT cannot meet the bound at any useful rate
CONFIRM_TRIES = 3


@dataclass
class PeakResult:
    scenario: str
    best_qps: float
    trials: list[tuple[float, bool]] = field(default_factory=list)   # (qps, good) per short run
    confirmed: dict | None = None                                     # the full run's record
    error: str | None = None


def _good(record: dict) -> bool:
    return record.get("error") is None and bool(record.get("performance_constraints_satisfied"))


def find_peak_server(task: InferenceTask, options: RunOptions, start_qps: float,
                     log: Callable[[str], None] = lambda _: None) -> PeakResult:
    """Search the Server target QPS, then confirm it with a full (or --quick) run."""
    search = replace(options, quick=True, out=options.out / "peak-search")
    trials: list[tuple[float, bool]] = []

    hopeless = []   # set when even the fastest answer was over the bound: no rate can help

    def trial(qps: float) -> bool:
        # A few seconds of queries at this rate, however low the rate.
        queries = int(max(10, min(SEARCH_SETTINGS["min_query_count"], qps * SEARCH_SECONDS)))
        settings = {**SEARCH_SETTINGS, **(options.user_settings or {}), "min_query_count": queries,
                    "target_qps": round(qps, 3)}
        record = run_test(task, "Server", "performance", replace(search, user_settings=settings))
        good = _good(record)
        trials.append((qps, good))
        log(f"  Server at {qps:.1f} QPS: {'meets' if good else 'misses'} the latency bound")
        fastest_ns = record.get("stats", {}).get("Min latency (ns)")
        bound_ns = float(record["settings"].get("target_latency", 0)) * 1e6
        if not good and isinstance(fastest_ns, (int, float)) and bound_ns and fastest_ns > bound_ns:
            hopeless.append(fastest_ns)
        return good

    low, high = 0.0, None
    qps = max(start_qps, 0.1)
    for _ in range(8):                   # grow until the bound is missed ...
        if not trial(qps):
            high = qps
            break
        low, qps = qps, qps * 2.0
    for _ in range(MAX_HALVINGS if low == 0.0 else 0):   # ... or shrink until it is met
        if hopeless:
            break
        qps /= 4.0
        if trial(qps):
            low = qps
            break
        high = qps
    if low == 0.0:
        why = (f"its fastest answer took {hopeless[0] / 1e6:.1f} ms" if hopeless
               else f"no rate down to {qps:.2f} QPS met it")
        return PeakResult("Server", 0.0, trials, error=(
            f"the SUT cannot meet the Server latency bound: {why}"))
    high = high if high is not None else low * 2.0
    for _ in range(BISECT_STEPS):
        if high - low <= 0.02 * low:
            break
        middle = (low + high) / 2
        if trial(middle):
            low = middle
        else:
            high = middle
    result = PeakResult("Server", low, trials)
    rate = low
    for _ in range(CONFIRM_TRIES):
        settings = {**(options.user_settings or {}), "target_qps": round(rate, 3)}
        record = run_test(task, "Server", "performance", replace(options, user_settings=settings))
        result.confirmed, result.best_qps = record, rate
        log(f"  confirm at {rate:.1f} QPS: {record.get('result')}")
        if record.get("valid") or (options.quick and _good(record)):
            break
        rate *= 0.9
    return result


def find_peak_offline(task: InferenceTask, options: RunOptions, start_qps: float,
                      log: Callable[[str], None] = lambda _: None) -> PeakResult:
    """Measure Offline throughput with a short run, then run with it as the expected QPS."""
    search = replace(options, quick=True, out=options.out / "peak-search",
                     user_settings={**SEARCH_SETTINGS, "target_qps": round(start_qps, 3)})
    record = run_test(task, "Offline", "performance", search)
    measured = float(record.get("value") or start_qps)
    log(f"  Offline short run: {measured:.1f} samples/s")
    result = PeakResult("Offline", measured, [(start_qps, _good(record) or record.get("error") is None)])
    settings = {**(options.user_settings or {}), "target_qps": round(measured, 3)}
    result.confirmed = run_test(task, "Offline", "performance", replace(options, user_settings=settings))
    return result
