"""The suite's last line: how many converged, what did not and why, wall and CPU time."""

from __future__ import annotations

from pathlib import Path

from mlpace.harness.report import suite_verdict
from mlpace.harness.runs import ResultSet
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from test_harness_run import SPEC, LinearWorkload, _with_mini


def _result(outcome) -> ResultSet:
    return ResultSet(SPEC, "mini", Path("r"), Path("s.json"), [1], [outcome], None, 1)


def test_verdict_names_each_failure_and_its_reason(tmp_path):
    converged = run_once(LinearWorkload(), RunContext(seed=3), tmp_path / "a.txt")
    out_of_epochs = run_once(_with_mini(LinearWorkload(), max_epochs=1), RunContext(seed=3), tmp_path / "b.txt")
    out_of_time = run_once(_with_mini(LinearWorkload()), RunContext(seed=3), tmp_path / "c.txt",
                           time_budget_s=0.0)
    line = suite_verdict([_result(converged), _result(out_of_epochs), _result(out_of_time)], 125.0, 300.4)
    assert "\n" not in line
    assert line.startswith("suite: 1 of 3 converged; not converged: ")
    assert "resnet aborted (max epochs)" in line
    assert "resnet aborted (time budget: 0 s of CPU time per thread" in line
    assert line.endswith("wall 2m 05.0s, CPU 300 s")


def test_verdict_all_converged(tmp_path):
    converged = run_once(LinearWorkload(), RunContext(seed=3), tmp_path / "a.txt")
    assert suite_verdict([_result(converged)], 1.0, 2.0) == "suite: 1 of 1 converged; wall 0m 01.0s, CPU 2 s"


def test_verdict_of_an_interrupted_suite(tmp_path):
    converged = run_once(LinearWorkload(), RunContext(seed=3), tmp_path / "a.txt")
    line = suite_verdict([_result(converged)], 1.0, 2.0, interrupted="ssd", not_run=["bert", "rnnt"])
    assert line == "suite: 1 of 1 converged; interrupted in ssd; not run: bert, rnnt; wall 0m 01.0s, CPU 2 s"
