"""`mlpace validate BENCHMARK`: the smoke test a person runs after changing a benchmark.

At each scale it builds the workload on tiny generated data (for the reference scale, in the
real format, read by the real loader), trains one short epoch (a few steps), and runs the
official MLPerf compliance checker on the log: mini logs as open-division runs, reference
logs as closed-division runs, so that the closed rules' keys are checked too. A few steps
cannot reach a quality target, so the closed rules' complaint about the target is the one
finding that does not fail validation.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.benchmarks import SCALE_NAMES, implemented_scales, make_workload
from mlpace.errors import MlpaceError
from mlpace.rules.benchmarks import get_spec
from mlpace.rules.rounds import MLPACE_RULESET

DIVISION = {"mini": "open", "reference": "closed"}


@dataclass
class Check:
    scale: str
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.scale:<9}  {self.name}: {self.detail}"


@dataclass
class Validation:
    benchmark: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def verdict(self) -> str:
        failed = [c for c in self.checks if not c.ok]
        if not failed:
            return f"{self.benchmark}: valid ({len(self.checks)} checks passed)"
        return f"{self.benchmark}: NOT valid ({len(failed)} of {len(self.checks)} checks failed)"


def _tiny_config(benchmark: str):
    package = importlib.import_module(f"mlpace.benchmarks.{benchmark}")
    tiny = getattr(package, "tiny_config", None)
    if tiny is None:
        raise MlpaceError(f"benchmark {benchmark!r} has no tiny data for validation yet "
                          f"(mlpace.benchmarks.{benchmark} defines no tiny_config)")
    return tiny


def _is_target_finding(message: str) -> bool:
    """The closed rules' check that the quality target was reached (`eval_accuracy >= target`)."""
    return "eval_accuracy" in message and (">=" in message or "ATLEAST_ONE_CHECK" in message)


def _checker(log: Path, scale: str) -> list[Check]:
    from mlpace.submission.check import _compliance, plain_compliance_message
    valid, errors, _warnings = _compliance((str(log), MLPACE_RULESET))
    if valid:
        return [Check(scale, "official compliance checker", True, f"{DIVISION[scale]} rules: pass")]
    real = [e for e in errors if not (scale == "reference" and _is_target_finding(e))]
    if errors and not real:
        return [Check(scale, "official compliance checker", True,
                      "closed rules: pass but for the quality target (not reached in a few steps)")]
    return [Check(scale, "official compliance checker", False, plain_compliance_message(e))
            for e in real or ["invalid log (no message)"]]


def validate_scale(benchmark: str, scale: str, work: Path, device: str = "cpu") -> list[Check]:
    from mlpace.harness.timed_run import Submitter, run_once
    from mlpace.harness.workload import RunContext

    checks: list[Check] = []
    try:
        start = time.monotonic()
        workload = make_workload(benchmark, scale, _tiny_config(benchmark)(scale, work))
        workload.prepare_data(work)
        checks.append(Check(scale, "tiny data", True, f"ready in {time.monotonic() - start:.1f} s"))
        log = work / f"result_{scale}.txt"
        outcome = run_once(workload, RunContext(device=device, seed=1, data_dir=work), log,
                           Submitter(division=DIVISION[scale]), max_epochs=1)
    except MlpaceError:
        raise
    except Exception as err:     # noqa: BLE001 - a broken benchmark is the finding to report
        return checks + [Check(scale, "training steps", False, f"{type(err).__name__}: {err}")]
    checks.append(Check(scale, "training steps", outcome.epochs >= 1,
                        f"{outcome.epochs} epoch, {outcome.samples} samples, "
                        f"{len(outcome.evals)} evaluation(s), {outcome.seconds:.1f} s"))
    return checks + _checker(log, scale)


def validate(benchmark: str, scales: tuple[str, ...] = SCALE_NAMES, device: str = "cpu") -> Validation:
    spec = get_spec(benchmark)
    result = Validation(spec.name)
    for scale in scales:
        if scale not in implemented_scales(spec.name):
            result.checks.append(Check(scale, "implemented", False, f"no {scale} implementation"))
            continue
        with tempfile.TemporaryDirectory(prefix=f"mlpace-validate-{scale}-") as work:
            result.checks += validate_scale(spec.name, scale, Path(work), device)
    return result
