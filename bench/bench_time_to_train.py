"""Time-to-train of a mini benchmark over several seeds (what BENCHMARKS.md records).

Runs `mlpace train <benchmark> --scale mini --runs N` through the library and prints, per run,
the wall time-to-train (run_start to run_stop, as the log says), the process's CPU time in the
timed region, epochs and status; then the medians, the olympic score and how many converged.
On a machine shared with other jobs, the CPU time divided by the threads used is the better
estimate of the uncontended time.

    .venv/bin/python bench/bench_time_to_train.py resnet --runs 5 --threads 2 [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from mlpace.harness.config import parse_set_options
from mlpace.training.runs import TrainRequest, train_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        result = train_result(TrainRequest(
            benchmark=args.benchmark, runs=args.runs, out=Path(out), seed=args.seed, system="bench",
            data_dir=args.data_dir, overrides=parse_set_options(args.overrides)))
    for i, o in enumerate(result.outcomes):
        print(f"run {i}: seed {result.seeds[i]} {o.status:8s} epochs {o.epochs:3d} "
              f"wall {o.seconds:7.1f} s  cpu {o.cpu_seconds:7.1f} s  quality {o.quality}")
    converged = [o for o in result.outcomes if o.converged]
    if converged:
        print(f"median of converged runs: wall {statistics.median(o.seconds for o in converged):.1f} s, "
              f"cpu/threads {statistics.median(o.cpu_seconds for o in converged) / args.threads:.1f} s")
    print(f"converged {len(converged)} of {len(result.outcomes)}; olympic score: "
          f"{result.score.minutes if result.score else '-'} min ({args.threads} torch threads)")


if __name__ == "__main__":
    main()
