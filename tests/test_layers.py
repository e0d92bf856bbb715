"""The layers of mlpace point one way: asserted from the import graph of src/mlpace.

Every `import` counts, at module level or inside a function (a lazy import is still a
dependency, only a later one). From bottom to top:

    io, errors                  files, and the one error type: import nothing else of mlpace
    rules, errors, words        facts of MLPerf
    submission, results, report read and score logs: no torch, no benchmarks, no harness
    harness                     timed run, logging, seeds: knows only the Workload interface
    benchmarks                  workloads on the harness (and each one's serve.py: inference's level)
    training                    resolve a benchmark, run the seeds, score, store; trains served models
    inference                   serves models, never trains them
    commands, cli               the user's entry points
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlpace

SRC = Path(mlpace.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name an import statement anywhere in `source` may load; `from a import b`
    gives both `a` and `a.b` (b may be a module)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def sources(package: str) -> list[Path]:
    root = SRC.parent.joinpath(*package.split("."))
    if root.with_suffix(".py").is_file():
        return [root.with_suffix(".py")]
    return sorted(root.rglob("*.py"))


def imports_of(package: str) -> dict[str, set[str]]:
    files = sources(package)
    assert files, f"no source for {package}"       # a renamed layer must not pass by vanishing
    return {module_name(f): imported_names(f.read_text(), module_name(f), f.name == "__init__.py")
            for f in files}


def within(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def violations(package: str, forbidden: list[str]) -> list[str]:
    return [f"{module} imports {name}"
            for module, names in imports_of(package).items()
            for name in sorted(names)
            if any(within(name, f) for f in forbidden)]


def test_the_parser_sees_function_level_and_relative_imports():
    source = "import os\ndef f():\n    from mlpace.harness import runs\n    from . import tree\n"
    names = imported_names(source, "mlpace.submission.check")
    assert {"os", "mlpace.harness", "mlpace.harness.runs", "mlpace.submission.tree"} <= names
    assert within("mlpace.harness.runs", "mlpace.harness") and not within("mlpace.harnessx", "mlpace.harness")


def test_io_imports_nothing_of_mlpace_but_its_error():
    """The bottom floor: io raises MlpaceError (one `error:` line), and errors is a leaf."""
    assert [v for v in violations("mlpace.io", ["mlpace"]) if " imports mlpace.errors" not in v] == []
    assert violations("mlpace.errors", ["mlpace"]) == []


def test_benchmarks_train_on_the_harness_and_serve_through_their_serve_modules():
    """A benchmark's training side (data, model, workload) sits below the training layer; its
    inference binding, serve.py, sits at inference's level (it asks training for weights)."""
    found = [v for v in violations("mlpace.benchmarks", ["mlpace.training", "mlpace.inference", "mlpace.commands"])
             if not v.split(" ")[0].endswith(".serve")]
    assert found == []


def test_harness_knows_only_the_workload_interface():
    assert violations("mlpace.harness", ["mlpace.benchmarks", "mlpace.inference", "mlpace.training",
                                         "mlpace.submission.summarize", "mlpace.commands"]) == []


@pytest.mark.parametrize("package", ["mlpace.submission", "mlpace.results", "mlpace.report"])
def test_the_reading_half_never_imports_torch_benchmarks_or_harness(package):
    assert violations(package, ["torch", "mlpace.benchmarks", "mlpace.harness", "mlpace.training",
                                "mlpace.inference.models"]) == []


def training_code(path: Path) -> list[str]:
    """Optimizer steps and backward passes: the marks of a training loop."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("optim", "backward"):
            found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    return found


def test_inference_serves_models_and_never_trains_them():
    assert violations("mlpace.inference", ["mlpace.harness.timed_run", "mlpace.training.runs"]) == []
    assert [line for path in sources("mlpace.inference") for line in training_code(path)] == []


def test_the_training_loop_detector_sees_a_loop():
    from mlpace.training import squad_finetune
    assert training_code(Path(squad_finetune.__file__))
