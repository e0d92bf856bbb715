"""Score a whole published-round-size training tree: mlpace vs a naive scorer vs the official tool.

    .venv/bin/python bench/bench_summarize.py                  # 2,750 logs, 5 repeats, official once
    .venv/bin/python bench/bench_summarize.py --logs 540 --repeats 3 --no-official

The round: the published v1.0 fixture logs (tests/data/mlperf/training_v1.0: NVIDIA, Google,
Graphcore, Intel; 135 real, messy logs) repeated under renamed organisations (`NVIDIA_c2`, ...,
their system descriptions' `submitter` renamed too, so every row of every table is distinct)
until it holds `--logs` result files: the size of MLPerf Training v2.0 (about 2,750 logs). Logs
are hard links (one copy in the page cache), so the cache is warm after the first pass.

Every tool runs as a fresh process (interpreter start and imports included, as a user runs it):
- naive: the scorer anyone would write in 60 lines (`naive_scores` below: read each file as
  text, `json.loads` every `:::MLLOG` line, olympic mean; one process);
- mlpace: `mlpace summarize ROUND --json`;
- official: `python -m mlperf_logging.result_summarizer "ROUND/{*}" training RULESET --csv`
  (it runs the compliance checker on every log: minutes for a round, so it runs once).
naive and mlpace alternate `--repeats` times (the machine's load hits both alike); the report
gives the medians and the median of the per-pair ratios. Agreement: mlpace's scores against the
naive scorer's (every result) and the official tool's (every score in its CSV), each stating
how many scores it compared; no comparison, or an official exit code other than 0, is no
agreement. Exit status 1 when anything disagrees.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from round_tree import FIXTURES, make_round

REPO = Path(__file__).resolve().parents[1]
# mlpace's CLI restricted to the submission verbs, so the bench runs whatever state other areas are in.
MLPACE = ("import sys, mlpace.cli as cli; cli.COMMAND_MODULES = ['mlpace.commands.submission']; "
          "sys.exit(cli.main(sys.argv[1:]))")
NOT_SCORES = {"number_of_nodes", "host_processors_count", "accelerators_count"}
TOLERANCE = 1e-9          # relative


# ---------------------------------------------------------------- the naive scorer

def naive_scores(root: str) -> dict[str, float | None]:
    """{result folder relative to root: score in minutes} the plain way (no process pool, no
    byte tricks): what mlpace must beat by 3x."""
    runs: dict[str, list] = {}
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            if not (name.startswith("result_") and name.endswith(".txt")):
                continue
            start = stop = status = None
            with open(os.path.join(folder, name), encoding="latin-1") as handle:
                for line in handle:
                    pos = line.find(":::MLLOG ")
                    if pos < 0:
                        continue
                    try:
                        record = json.loads(line[pos + 9:])
                    except ValueError:
                        continue
                    key = record.get("key")
                    if key == "run_start" and start is None:
                        start = float(record["time_ms"])
                    elif key == "run_stop" and stop is None:
                        stop = float(record["time_ms"])
                        status = (record.get("metadata") or {}).get("status")
            converged = status == "success" and start is not None
            runs.setdefault(os.path.relpath(folder, root), []).append(
                (stop - start) / 60 / 1000 if converged else None)
    scores = {}
    for folder, minutes in runs.items():
        drop = 4 if os.path.basename(folder) == "unet3d" else 1
        done = sorted(m for m in minutes if m is not None)
        failed = len(minutes) - len(done)
        kept = done[drop:len(done) - (drop - failed)] if failed <= drop else []
        scores[folder] = sum(kept) / len(kept) if kept else None
    return scores


# ---------------------------------------------------------------- running and comparing

def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the process and its workers, the finished process)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, done


def _rel(x: float, y: float) -> bool:
    return abs(x - y) <= TOLERANCE * abs(y)


def compare_naive(naive: dict, ours_json: dict, root: Path) -> tuple[int, list[str]]:
    """(scores compared, differences) between the naive scorer and mlpace, per result folder."""
    ours = {}
    for result in ours_json["training_details"]:
        if result["runs"]:
            folder = os.path.relpath(Path(result["runs"][0]["path"]).parent, root)
            ours[folder] = result["minutes"]
    compared, differences = 0, []
    for folder, score in sorted(naive.items()):
        mine = ours.get(folder, "missing")
        compared += 1
        same = mine is None if score is None else isinstance(mine, float) and _rel(mine, score)
        if not same:
            differences.append(f"{folder}: naive {score}, mlpace {mine}")
    return compared, differences


def compare_official(official_csv: Path, ours_json: dict) -> tuple[int, int, list[str]]:
    """(scores compared, systems compared, differences): every score in the official CSV
    against mlpace's row of the same submitter and system, and every score mlpace gives
    where the official table has none."""
    if not official_csv.exists():
        return 0, 0, ["the official tool wrote no CSV"]
    ours = {(row["submitter"], row["system"]): row for row in ours_json["training"]}
    compared, systems, differences = 0, set(), []
    with open(official_csv) as handle:
        for row in csv.DictReader(handle):
            key = (row.get("submitter"), row.get("system"))
            if key not in ours:
                differences.append(f"{key}: in the official table, not in mlpace's")
                continue
            for column, value in row.items():
                if column in NOT_SCORES or column not in ours[key]:
                    continue
                if value in ("", None):
                    if isinstance(ours[key][column], float):
                        differences.append(f"{key} {column}: no official score, mlpace "
                                           f"{ours[key][column]}")
                    continue
                try:
                    official = float(value)
                except ValueError:
                    continue
                mine = ours[key][column]
                compared += 1
                systems.add(key)
                if not (isinstance(mine, (int, float)) and _rel(float(mine), official)):
                    differences.append(f"{key} {column}: official {official}, mlpace {mine}")
    return compared, len(systems), differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=2750, help="result files in the round (default 2,750)")
    parser.add_argument("--repeats", type=int, default=5, help="naive/mlpace pairs (default 5)")
    parser.add_argument("--ruleset", default="1.0.0")
    parser.add_argument("--no-official", action="store_true",
                        help="skip the official summarizer (minutes on a round)")
    parser.add_argument("--naive", metavar="ROOT", help=argparse.SUPPRESS)  # the naive scorer's process
    args = parser.parse_args()
    if args.naive:
        json.dump(naive_scores(args.naive), sys.stdout)
        return 0
    if not FIXTURES.is_dir():
        print(f"error: fixtures not found at {FIXTURES}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mlpace-bench-") as tmp:
        # Two trees: the official tool writes files into the one it reads.
        ours_root, official_root = Path(tmp) / "mlpace" / "training_v1.0", Path(tmp) / "official" / "training_v1.0"
        files = make_round(ours_root, args.logs, rename_submitters=True)
        if not args.no_official:
            make_round(official_root, args.logs, rename_submitters=True)
        size = sum(p.stat().st_size for p in ours_root.glob("*/results/*/*/result_*.txt"))
        ours_file = Path(tmp) / "mlpace.json"
        naive_cmd = [sys.executable, __file__, "--naive", str(ours_root)]
        ours_cmd = [sys.executable, "-c", MLPACE, "summarize", str(ours_root),
                    "--ruleset", args.ruleset, "--json", str(ours_file)]
        subprocess.run(naive_cmd, capture_output=True)         # warm the page cache
        print(f"round: {files} result logs, {size / 2**20:.0f} MB, ruleset {args.ruleset}, "
              f"{os.cpu_count()} CPUs, load average {_loadavg()}")
        t_naive, t_ours, cpu_naive, cpu_ours = [], [], [], []
        for _ in range(args.repeats):
            seconds, cpu, naive = timed(naive_cmd)
            t_naive.append(seconds)
            cpu_naive.append(cpu)
            seconds, cpu, ours = timed(ours_cmd)
            t_ours.append(seconds)
            cpu_ours.append(cpu)
            if naive.returncode or ours.returncode or not ours_file.exists():
                print(f"error: a scorer failed:\n{naive.stderr}{ours.stderr}", file=sys.stderr)
                return 1
            print(f"  naive {t_naive[-1]:6.2f} s (CPU {cpu_naive[-1]:5.2f} s)   mlpace {t_ours[-1]:6.2f} s "
                  f"(CPU {cpu_ours[-1]:5.2f} s)   ratio {t_naive[-1] / t_ours[-1]:.2f}x   (load {_loadavg()})")
        ours_json = json.loads(ours_file.read_text())
        naive_compared, naive_diffs = compare_naive(json.loads(naive.stdout), ours_json, ours_root)
        median = statistics.median
        print(f"naive scorer:     median {median(t_naive):6.2f} s wall, {median(cpu_naive):5.2f} s CPU")
        print(f"mlpace summarize: median {median(t_ours):6.2f} s wall, {median(cpu_ours):5.2f} s CPU")
        print(f"mlpace vs naive: {median(n / o for n, o in zip(t_naive, t_ours)):.2f}x wall, "
              f"{median(n / o for n, o in zip(cpu_naive, cpu_ours)):.2f}x CPU "
              f"(medians of the {args.repeats} pairs' ratios)")
        agree = _report("naive scorer", naive_compared, naive_diffs)
        if not args.no_official:
            official_file = Path(tmp) / "official.csv"
            seconds, _, official = timed([sys.executable, "-m", "mlperf_logging.result_summarizer",
                                       f"{official_root}/{{*}}", "training", args.ruleset,
                                       "--csv", str(official_file)])
            compared, systems, diffs = compare_official(official_file, ours_json)
            print(f"official result_summarizer: {seconds:6.2f} s (exit {official.returncode}), "
                  f"mlpace {statistics.median(t_ours):.2f} s: "
                  f"{seconds / statistics.median(t_ours):.1f}x faster (load {_loadavg()})")
            if official.returncode != 0:
                diffs.insert(0, f"the official tool exited {official.returncode}: "
                                f"{official.stderr.strip().splitlines()[-1:]}")
            agree = _report(f"official tool ({systems} systems)", compared, diffs) and agree
    return 0 if agree else 1


def _report(what: str, compared: int, differences: list[str]) -> bool:
    agree = compared > 0 and not differences
    print(f"agreement with the {what}: {compared} scores compared, {len(differences)} differ: "
          f"{'AGREE' if agree else 'DO NOT AGREE'}")
    for line in differences[:20]:
        print(f"  {line}")
    if len(differences) > 20:
        print(f"  ... and {len(differences) - 20} more")
    return agree


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
