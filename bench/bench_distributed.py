"""Time-to-train and throughput of mini resnet with 1 and 2 data-parallel processes.

    .venv/bin/python bench/bench_distributed.py [--nproc 1 2] [--seed 7] [--device cpu]
                                                [--threads 1] [--set KEY=VALUE ...]

Runs `mlpace train resnet --scale mini --nproc-per-node N` once per N as a fresh process
(torch's elastic launcher spawns the workers; N = 1 is the plain single-process path), all
with the same seed and data, and reads each run's score.json: time to train (run_start to
run_stop, as logged), epochs, quality, and throughput = training samples / timed seconds
(evaluations included, as in the timed region). `--threads` pins torch threads per process,
so that 2 processes use twice the cores of 1; `--set` passes config overrides through.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(nproc: int, args, data_dir: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "mlpace", "train", "resnet", "--scale", "mini",
               "--nproc-per-node", str(nproc), "--seed", str(args.seed), "--device", args.device,
               "--out", str(out), "--data-dir", str(data_dir), "--quiet", "--no-store",
               "--set", f"threads={args.threads}"]
    for item in args.set or []:
        command += ["--set", item]
    if args.max_epochs:
        command += ["--max-epochs", str(args.max_epochs)]
    command += ["--time-budget", str(args.time_budget)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    scores = list(out.rglob("score.json"))
    if done.returncode not in (0, 1) or not scores:
        raise SystemExit(f"error: {nproc} process(es) failed ({done.returncode}):\n{done.stderr[-2000:]}")
    r = json.loads(scores[0].read_text())["runs"][0]
    return {"nproc": nproc, "status": r["status"], "epochs": r["epochs"], "quality": r["quality"],
            "seconds": r["seconds"], "samples_per_s": r["samples"] / max(r["seconds"], 1e-9),
            "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--time-budget", type=float, default=3600,
                        help="seconds of timed region before a run is aborted (a loaded CPU is slow)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        for n in args.nproc:
            rows.append(run(n, args, data_dir, Path(tmp) / f"out-{n}"))
            r = rows[-1]
            print(f"{n} process(es): {r['status']:8s} epochs {r['epochs']:3d}  quality {r['quality']:.4f}  "
                  f"time to train {r['seconds']:8.1f} s  throughput {r['samples_per_s']:8.1f} samples/s  "
                  f"(wall {r['wall_s']:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
