"""The facts that make two results comparable, and the rule that says when they are.

A time-to-train means something only against the target it reached, at the scale it ran:
a mini run on a laptop and a DGX A100 on ImageNet are not "faster" or "slower" than each
other. So every stored result carries its scale, metric, target and division, decided here
once, at import (and by the schema migration for older stores), and every ratio the store
or the report prints asks `why_not_comparable` first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from mlpace.errors import MlpaceError
from mlpace.rules.benchmarks import BENCHMARKS
from mlpace.rules.divisions import SCALES
from mlpace.rules.rounds import round_for_ruleset


def is_published(round_version: str) -> bool:
    """A round of MLCommons (v1.0, ...) rather than the user's own ("local") results."""
    return round_version != "local"


def official_target(benchmark: str, round_version: str):
    """The target a published round set for a benchmark (`mlpace.rules`); None where mlpace
    does not know that round's targets."""
    try:
        spec = round_for_ruleset(round_version).closed_target(benchmark)
    except MlpaceError:          # a round mlpace does not know
        return None
    return spec.reference.target if spec else None


def training_target(benchmark: str, round_version: str, logged):
    """Published rounds: the round's official target. Own results: the target the logs (or
    mlpace's score.json) state, else unknown (None). Never the reference target by default:
    mlpace's own logs do not state their target, and a packaged mini result (no score.json)
    would then claim ImageNet's 75.9 % and be divided by a DGX's time."""
    if is_published(round_version):
        official = official_target(benchmark, round_version)
        return official if official is not None else logged
    return logged


def training_scale(benchmark: str, round_version: str, target, declared: str | None = None) -> str:
    """mini or reference: as mlpace's score.json declares it; published results are reference
    scale; own ones are mini exactly when the target is the benchmark's mini target, and
    unknown when nothing states their target."""
    if declared in SCALES:
        return declared
    if is_published(round_version):
        return "reference"
    if target is None:
        return "unknown"
    spec = BENCHMARKS.get(benchmark)
    if spec and target == spec.mini.target and target != spec.reference.target:
        return "mini"
    return "reference"


def inference_scale(round_version: str, declared: str | None = None) -> str:
    """Published inference results are reference scale; own ones say, or are unknown."""
    if declared in SCALES:
        return declared
    return "reference" if is_published(round_version) else "unknown"


def run_date(first_run_start_ms: float | None) -> str | None:
    """The date a result set is filed under: its first run_start, ISO 8601 UTC."""
    if first_run_start_ms is None:
        return None
    return datetime.fromtimestamp(first_run_start_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric_of(benchmark: str) -> str:
    spec = BENCHMARKS.get(benchmark)
    return spec.metric if spec else ""


def target_text(target) -> str:
    """A target for people: 0.759, or BBOX 0.377 / SEGM 0.339; 'unknown' when None."""
    if target is None:
        return "unknown"
    if isinstance(target, dict):
        return " / ".join(f"{key} {value:g}" for key, value in target.items())
    return f"{target:g}" if isinstance(target, (int, float)) else str(target)


def _target(row: dict):
    target = row.get("target")
    return json.loads(target) if isinstance(target, str) else target


def why_not_comparable(a: dict, b: dict) -> str | None:
    """Why the times of two training results must not be divided; None when they may be.

    Rows are query rows: benchmark, system, scale, target (JSON text or value)."""
    name = f"{a['system']} and {b['system']} on {a['benchmark']}"
    if a["benchmark"] != b["benchmark"]:
        return f"{a['system']} ran {a['benchmark']} and {b['system']} ran {b['benchmark']}"
    if a["scale"] != b["scale"]:
        return (f"{name}: {a['scale']} scale against {b['scale']} scale; times at different "
                "scales are not comparable")
    ta, tb = _target(a), _target(b)
    if ta is None or tb is None:
        unknown = a["system"] if ta is None else b["system"]
        return f"{name}: the quality target of {unknown}'s result is not known"
    if ta != tb:
        return (f"{name}: target {target_text(ta)} against {target_text(tb)}; times to "
                "different targets are not comparable")
    return None
