"""The official MLPerf checkers, as tests run them on what mlpace writes.

A plain module (not conftest.py): test folders may have conftest.py files of their own, and
`from conftest import ...` would then find whichever was imported first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_compliance_checker(log: Path, ruleset: str = "1.1.0") -> tuple[bool, str]:
    """Run the official `mlperf_logging.compliance_checker` on one training log."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
         "--ruleset", ruleset, str(log)],
        capture_output=True, text=True, timeout=300, cwd=log.parent)  # it writes a log file in cwd
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "SUCCESS" in out, out


INFERENCE_CHECKER = (Path(__file__).resolve().parent / "data" / "official" / "inference-v1.1-submission-checker"
                     / "submission-checker.py")


def run_inference_checker(root: Path) -> tuple[bool, list[str], str]:
    """Run the official MLPerf Inference v1.1 submission checker (unchanged, from tests/data/official)
    on a submission root: (accepted, its ERROR lines, its output). Accepted means what MLCommons
    review means: no ERROR line at all (some errors end in "SUMMARY: submission has errors", some
    only in the line) and "SUMMARY: submission looks OK"."""
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:      # it writes a CSV summary: never into a tree
        proc = subprocess.run([sys.executable, str(INFERENCE_CHECKER), "--input", str(root), "--version", "v1.1",
                               "--csv", str(Path(scratch) / "summary.csv")],
                              capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if " ERROR] " in line or line.startswith("ERROR:")]
    return proc.returncode == 0 and not errors and "SUMMARY: submission looks OK" in out, errors, out
