"""Time-to-train of a mini benchmark over several seeds (what BENCHMARKS.md records).

Runs `mlpace train <benchmark> --scale mini --runs N` through the library and prints, per run,
the wall time-to-train (run_start to run_stop, as the log says), the process's CPU time in the
timed region, epochs and status; then the medians, the olympic score and how many converged.
On a machine shared with other jobs, the CPU time divided by the threads used is the better
estimate of the uncontended time; `--time-budget-s` lifts the wall-clock budget so that a slow
(loaded) machine does not abort runs that are still converging.

`suite` in place of a benchmark runs every mini benchmark in turn, as `mlpace suite --scale
mini` does (one run each unless --runs says more), and adds the whole suite's wall and process
CPU time, set-up and evaluation included.

    .venv/bin/python bench/bench_time_to_train.py resnet --runs 5 --threads 2 [--seed 1]
    .venv/bin/python bench/bench_time_to_train.py suite --runs 1 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mlpace.benchmarks import implemented_scales
from mlpace.harness.config import parse_set_options
from mlpace.harness.runs import TrainRequest, train_result
from mlpace.rules.benchmarks import BENCHMARKS


def run_benchmark(name: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as out:
        result = train_result(TrainRequest(
            benchmark=name, runs=args.runs, out=Path(out), seed=args.seed, system="bench",
            data_dir=args.data_dir, overrides=parse_set_options(args.overrides),
            time_budget_s=args.time_budget_s))
    for i, o in enumerate(result.outcomes):
        print(f"{name} run {i}: seed {result.seeds[i]} {o.status:8s} epochs {o.epochs:3d} "
              f"wall {o.seconds:7.1f} s  cpu {o.cpu_seconds:7.1f} s  quality {o.quality}")
    converged = [o for o in result.outcomes if o.converged]
    if converged:
        print(f"{name} median of converged runs: wall {statistics.median(o.seconds for o in converged):.1f} s, "
              f"cpu/threads {statistics.median(o.cpu_seconds for o in converged) / args.threads:.1f} s, "
              f"epochs {statistics.median(o.epochs for o in converged)}")
    print(f"{name} converged {len(converged)} of {len(result.outcomes)}; olympic score: "
          f"{result.score.minutes if result.score else '-'} min ({args.threads} torch threads)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help="a benchmark name, or `suite` for every mini benchmark")
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (5; suite: 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="wall-clock budget per run (default: the benchmark's own)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    suite = args.benchmark == "suite"
    if args.runs is None:
        args.runs = 1 if suite else 5
    torch.set_num_threads(args.threads)
    names = [n for n in BENCHMARKS if "mini" in implemented_scales(n)] if suite else [args.benchmark]
    wall, cpu = time.perf_counter(), time.process_time()
    for name in names:
        run_benchmark(name, args)
    if suite:
        print(f"suite ({len(names)} benchmarks, {args.runs} run(s) each): "
              f"wall {time.perf_counter() - wall:.1f} s, process CPU {time.process_time() - cpu:.1f} s")


if __name__ == "__main__":
    main()
