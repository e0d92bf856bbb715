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
