"""Shared test helpers: the official compliance checker, the fixtures, a small data root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real published MLPerf results, copied from ../shared/fixtures so that a clone tests itself
# (provenance and licence: tests/data/mlperf/README.md).
FIXTURES = REPO / "tests" / "data" / "mlperf"


def run_compliance_checker(log: Path, ruleset: str = "1.1.0") -> tuple[bool, str]:
    """Run the official `mlperf_logging.compliance_checker` on one training log."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
         "--ruleset", ruleset, str(log)],
        capture_output=True, text=True, timeout=300, cwd=log.parent)  # it writes a log file in cwd
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "SUCCESS" in out, out


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One generated-data cache for the whole test session (generators are deterministic)."""
    return tmp_path_factory.mktemp("mlpace-data")


@pytest.fixture(autouse=True)
def _private_store(tmp_path_factory, monkeypatch):
    """No test writes to the user's own results store."""
    monkeypatch.setenv("MLPACE_DB", str(tmp_path_factory.mktemp("store") / "results.sqlite"))


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores; one torch thread keeps them from fighting each other."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
