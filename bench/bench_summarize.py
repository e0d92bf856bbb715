"""mlpace summarize vs the official MLPerf result summarizer, on the same copied tree.

    .venv/bin/python bench/bench_summarize.py [--org-folder PATH] [--ruleset 1.0.0]

Copies the tree to a temporary folder (the official tool writes files next to the logs),
runs each tool once as a fresh process - interpreter start and imports included, as a user
would run them - and prints both wall times, the ratio, and whether the scores agree
(relative difference <= 1e-9). Default tree: the four NVIDIA systems of training v1.0 in
../shared/fixtures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TREE = REPO / ".." / "shared" / "fixtures" / "training_v1.0" / "NVIDIA"
# The CLI restricted to this area's verbs, so the bench runs whatever state other areas are in.
NOT_SCORES = {"number_of_nodes", "host_processors_count", "accelerators_count"}
MLPACE = ("import sys, mlpace.cli as cli; cli.COMMAND_MODULES = ['mlpace.commands.submission']; "
          "sys.exit(cli.main(sys.argv[1:]))")


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--org-folder", type=Path, default=DEFAULT_TREE,
                        help="an <org> folder with results/ and systems/ (default: NVIDIA, training v1.0)")
    parser.add_argument("--ruleset", default="1.0.0")
    args = parser.parse_args()
    if not args.org_folder.is_dir():
        print(f"error: {args.org_folder} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # Two identical copies: the official tool writes scaling.json files into the tree it
        # reads (its RCP checker runs with set_scaling=True), which would change mlpace's input.
        tree, tree_copy = _copy(args.org_folder, Path(tmp) / "official"), _copy(args.org_folder, Path(tmp) / "mlpace")
        official_csv, ours_json = Path(tmp) / "official.csv", Path(tmp) / "mlpace.json"
        t_official, official = timed([sys.executable, "-m", "mlperf_logging.result_summarizer",
                                      str(tree), "training", args.ruleset, "--csv", str(official_csv)])
        t_ours, ours = timed([sys.executable, "-c", MLPACE, "summarize", str(tree_copy),
                              "--ruleset", args.ruleset, "--json", str(ours_json)])
        if ours.returncode != 0 or not ours_json.exists():
            print(f"error: mlpace summarize failed:\n{ours.stderr}", file=sys.stderr)
            return 1
        agree, compared = _compare(official_csv, ours_json)
    files = sum(1 for _ in args.org_folder.rglob("result_*.txt"))
    print(f"tree: {args.org_folder} ({files} result files), ruleset {args.ruleset}, cpus: {os.cpu_count()}")
    print(f"official result_summarizer: {t_official:6.2f} s (exit {official.returncode})")
    print(f"mlpace summarize:           {t_ours:6.2f} s")
    print(f"speed-up: {t_official / t_ours:.1f}x")
    print(f"scores compared: {compared}, all identical within 1e-9: {agree}")
    return 0 if agree else 1


def _copy(src: Path, parent: Path) -> Path:
    dst = parent / src.name
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return dst


def _compare(official_csv: Path, ours_json: Path) -> tuple[bool, int]:
    """Every score the official tool printed equals mlpace's (the official CSV names systems
    by system_name, like mlpace's table)."""
    if not official_csv.exists():
        return False, 0
    ours = {row["system"]: row for row in json.loads(ours_json.read_text())["training"]}
    compared, agree = 0, True
    with open(official_csv) as handle:
        for row in csv.DictReader(handle):
            for column, value in row.items():
                if column in ours.get(row["system"], {}) and value and column not in NOT_SCORES:
                    try:
                        official = float(value)
                    except ValueError:
                        continue
                    mine = ours[row["system"]][column]
                    compared += 1
                    try:
                        mine = float(mine)
                    except (TypeError, ValueError):
                        mine = float("nan")
                    if not abs(mine - official) <= 1e-9 * abs(official):
                        print(f"differs: {row['system']} {column}: official {official}, mlpace {mine}")
                        agree = False
    return agree, compared


if __name__ == "__main__":
    raise SystemExit(main())
