"""The house rule of `mlpace.benchmarks`: one benchmark, one folder, the same file names in each.

`ls src/mlpace/benchmarks/*/` shows, in every folder of the registry, `__init__.py`, `data.py`,
`model.py` and `workload.py` (whose `make` the registry calls), and `serve.py` exactly where
the rules map an MLPerf Inference v1.1 model to the folder (`rules.inference.FOLDERS`).
A folder may hold helper modules of its own besides (rnnt's `features.py`, minigo's `go.py`).
Read from the registry and the rules, so that a benchmark added to either is held to it too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlpace.benchmarks
from mlpace.benchmarks import IMPLEMENTED
from mlpace.rules.inference import FOLDERS

BENCHMARKS_DIR = Path(mlpace.benchmarks.__file__).parent
CORE_FILES = ("__init__.py", "data.py", "model.py", "workload.py")
SERVED = set(FOLDERS.values())


def test_the_registry_is_the_benchmark_folders():
    """A benchmark folder the registry does not list (or the reverse) would be half a benchmark."""
    folders = {p.parent.name for p in BENCHMARKS_DIR.glob("*/__init__.py")}
    assert folders == set(IMPLEMENTED)


def test_every_served_model_has_an_implemented_folder():
    assert SERVED <= set(IMPLEMENTED), sorted(SERVED - set(IMPLEMENTED))


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_same_file_names_in_every_benchmark_folder(name):
    folder = BENCHMARKS_DIR / name
    missing = [f for f in CORE_FILES if not (folder / f).is_file()]
    assert not missing, f"benchmarks/{name}/ lacks {', '.join(missing)}"
    has_serve = (folder / "serve.py").is_file()
    if name in SERVED:
        assert has_serve, f"benchmarks/{name}/ serves an inference model but has no serve.py"
    else:
        assert not has_serve, f"benchmarks/{name}/serve.py serves no model of rules.inference.FOLDERS"


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_the_registry_finds_make_in_every_workload(name):
    tree = ast.parse((BENCHMARKS_DIR / name / "workload.py").read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "make" in functions, f"benchmarks/{name}/workload.py defines no make(scale, overrides)"
