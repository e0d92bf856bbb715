"""The progress display when output is not a terminal (a pipe, a CI log)."""

from __future__ import annotations

import io

from rich.console import Console

from mlpace.harness.progress import RichProgress, format_quality
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from test_harness_run import LinearWorkload, _with_mini


def _piped_run(workload, tmp_path):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    outcome = run_once(workload, RunContext(seed=3), tmp_path / "r.txt",
                       progress=RichProgress(console, label="run 0 | "))
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    return outcome, lines


def test_last_progress_line_shows_the_final_quality(tmp_path):
    outcome, lines = _piped_run(LinearWorkload(), tmp_path)
    assert outcome.converged
    last = lines[-1]
    assert f"quality {format_quality(outcome.quality)}" in last, last
    assert f"{outcome.samples} samples" in last and f"epoch {outcome.epochs}/" in last


def test_last_progress_line_agrees_after_several_evaluations(tmp_path):
    # unreachable target: three evaluations, the line must show the third, not the second
    outcome, lines = _piped_run(_with_mini(LinearWorkload(), max_epochs=3), tmp_path)
    assert len(outcome.evals) == 3 and not outcome.converged
    assert f"quality {format_quality(outcome.evals[-1][2])}" in lines[-1], lines[-1]
