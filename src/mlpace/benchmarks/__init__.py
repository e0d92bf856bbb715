"""The registry of benchmark implementations: `IMPLEMENTED`, one explicit list.

Every MLPerf Training benchmark has a spec in `mlpace.rules.benchmarks`; the ones mlpace can
run are listed in `IMPLEMENTED` and have a package here, `mlpace.benchmarks.<name>`, with the
same files in every folder (docs/layout.md): `data.py`, `model.py`, `workload.py`, and
`serve.py` where MLPerf Inference has a model for it. Its `__init__` is light (no torch) and
defines:

    SCALES = ("mini", "reference")          # the scales it implements
    def tiny_config(scale, root):           # optional: tiny data for `mlpace validate`

and its `workload.py` defines `make(scale, overrides)` -> `mlpace.harness.workload.Workload`.
`mlpace list` reads SCALES without importing torch; `make_workload` imports the heavy parts.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlpace.errors import MlpaceError
from mlpace.rules.benchmarks import BENCHMARKS, get_spec

SCALE_NAMES = ("mini", "reference")

# The benchmarks mlpace implements, each a package `mlpace.benchmarks.<name>`.
IMPLEMENTED = ("resnet", "ssd", "maskrcnn", "bert", "dlrm", "minigo", "rnnt", "unet3d")


def _package(name: str):
    if name not in IMPLEMENTED:
        return None
    return importlib.import_module(f"mlpace.benchmarks.{name}")


def implemented_scales(name: str) -> tuple[str, ...]:
    package = _package(name)
    return tuple(getattr(package, "SCALES", ())) if package else ()


def list_benchmarks() -> list[dict[str, Any]]:
    """One row per MLPerf Training benchmark: spec facts and implemented scales."""
    rows = []
    for name, spec in BENCHMARKS.items():
        rows.append({"name": name, "spec": spec, "scales": implemented_scales(name)})
    return rows


def make_workload(name: str, scale: str, overrides: dict[str, Any] | None = None):
    spec = get_spec(name)
    if scale not in SCALE_NAMES:
        raise MlpaceError(f"unknown scale {scale!r}; use one of {', '.join(SCALE_NAMES)}")
    scales = implemented_scales(name)
    if scale not in scales:
        have = f"implemented scales: {', '.join(scales)}" if scales else "not implemented yet"
        raise MlpaceError(f"benchmark {spec.name!r} has no {scale} implementation ({have})")
    workload = importlib.import_module(f"mlpace.benchmarks.{name}.workload")
    return workload.make(scale, overrides or {})
