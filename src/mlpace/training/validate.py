"""`mlpace validate BENCHMARK`: the smoke test a person runs after changing a benchmark.

At each scale it builds the workload on tiny generated data (for the reference scale, in the
real format, read by the real loader), trains one short epoch (a few steps), and runs the
official MLPerf compliance checker on the log: mini logs as open-division runs, reference
logs as closed-division runs, so that the closed rules' keys are checked too. A few steps on
tiny data can neither reach the quality target nor have the full data set's size, so the
closed rules' complaints about the target and about the size keys (TINY_SIZE_KEYS) are the
findings that do not fail validation; the check's line names them.
"""

from __future__ import annotations

import importlib
import re
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


# Keys whose closed-rule CHECK pins them to the full data set's size (rnnt eval_samples == 2703,
# unet3d train_samples == 168 and eval_samples == 42) or to a full generation's (minigo's 8192
# self-play games): tiny data breaks these by being tiny, whatever the code does.
TINY_SIZE_KEYS = ("train_samples", "eval_samples", "min_selfplay_games_per_generation",
                  "actual_selfplay_games_per_generation")


def _unavoidable_on_tiny_data(message: str) -> str:
    """What a closed-rule finding is about when a few steps on tiny data must break that rule
    (the quality target, or a size key's value); '' for every other finding."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    if first.startswith("Failed checks for eval_accuracy"):    # its at-least-one check: the target
        return "the quality target"
    m = re.match(r"CHECK for '(\w+)' failed", first)
    return f"{m.group(1)} (tiny data)" if m and m.group(1) in TINY_SIZE_KEYS else ""


def _checker(log: Path, scale: str) -> list[Check]:
    from mlpace.submission.check import _compliance, plain_compliance_message
    valid, errors, _warnings = _compliance((str(log), MLPACE_RULESET))
    if valid:
        return [Check(scale, "official compliance checker", True, f"{DIVISION[scale]} rules: pass")]
    unavoidable = [_unavoidable_on_tiny_data(e) if scale == "reference" else "" for e in errors]
    real = [e for e, why in zip(errors, unavoidable) if not why]
    if errors and not real:
        return [Check(scale, "official compliance checker", True,
                      f"closed rules: pass but for what a few steps on tiny data cannot meet: "
                      f"{', '.join(unavoidable)}")]
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
