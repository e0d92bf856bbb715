"""Logged values that cannot be true make a run invalid: it is never scored.

Training logs: a `time_ms` is milliseconds since 1970 (MLPerf logs are wall-clock stamped). A run whose
`run_stop` comes before its `run_start`, or whose stamps are not finite, negative or past
the year 2099 (a 400-digit number, an `Infinity`), did not happen as logged: mlpace counts
it as a failed run, like the official summarizer counts a run that fails compliance.

LoadGen results: a performance metric (samples per second, latency in ns) or an accuracy
figure is a finite number, not negative. Anything else (`nan`, `inf`, `-3`, `fast`) makes the
result invalid: it is shown without a value and never compared.
"""

from __future__ import annotations

import math

LATEST_TIME_MS = 4.1e12          # 2099-12-03: later stamps are corrupt or forged


def metric_problem(value) -> str | None:
    """Why a LoadGen metric or accuracy figure is impossible, or None when it is a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if value < 0:
        return f"{value!r} is negative"
    return None


def time_problem(run_start_ms: float | None, run_stop_ms: float | None) -> str | None:
    """Why these run_start / run_stop stamps are impossible, or None when they are possible."""
    for name, value in (("run_start", run_start_ms), ("run_stop", run_stop_ms)):
        if value is None:
            continue
        if not math.isfinite(value):
            return f"{name} time_ms is not a finite number"
        if value < 0 or value > LATEST_TIME_MS:
            return f"{name} time_ms {value:.6g} is not a time (before 1970 or after 2099)"
    if run_start_ms is not None and run_stop_ms is not None and run_stop_ms < run_start_ms:
        return (f"run_stop is {(run_start_ms - run_stop_ms) / 1000:.6g} s before run_start "
                "(impossible times)")
    return None
