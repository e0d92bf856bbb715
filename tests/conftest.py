"""Shared test fixtures: the published MLPerf results, a small data root, a private store.

Helpers that tests import by name live in plain modules (official_checkers.py), never here."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real published MLPerf results, copied from ../shared/fixtures so that a clone tests itself
# (provenance and licence: tests/data/mlperf/README.md).
FIXTURES = REPO / "tests" / "data" / "mlperf"


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
