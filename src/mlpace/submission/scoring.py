"""MLPerf Training scoring: time-to-train per run and the olympic mean of a result.

The rules, as the official result summarizer applies them (mlperf_logging.result_summarizer):
- a run's time-to-train is `run_stop.time_ms - run_start.time_ms`, reported in minutes;
- a run that did not converge (no `run_stop` with `status: success`), or that fails a
  compliance rule that changes the score (summarize.py), counts as an infinitely slow run:
  it is one of the dropped slowest runs;
- the score drops the `drop` fastest and the `drop` slowest runs (the benchmark's
  `olympic_drop` in mlpace.rules) and averages the rest; up to `drop` failed runs are
  tolerated, more gives no score.

This module is pure Python (no torch), shared by `mlpace train` and `mlpace summarize`.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Score:
    minutes: float | None      # None when the result has no valid score
    counted: int               # runs that entered the mean
    failed: int                # non-converged runs
    reason: str                # why there is no score, or "" when there is one


def olympic_score(minutes_per_run: list[float | None], drop: int) -> Score:
    """Olympic mean of converged run times (minutes); None marks a non-converged run.

    Mirrors `_compute_olympic_average` of the official summarizer: non-converged runs are
    the first of the slowest runs to be dropped, so with `failed` of them only
    `drop - failed` converged runs are dropped from the slow end.
    """
    if not minutes_per_run:
        return Score(None, 0, 0, "no runs: the folder holds no result_<i>.txt")
    converged = sorted(m for m in minutes_per_run if m is not None)
    failed = len(minutes_per_run) - len(converged)
    if failed > drop:
        return Score(None, 0, failed, f"{failed} runs did not converge; at most {drop} may")
    countable = converged[drop: len(converged) - (drop - failed)]
    if not countable:
        return Score(None, 0, failed, f"too few converged runs ({len(converged)}) for an olympic mean")
    return Score(sum(countable) / len(countable), len(countable), failed, "")
