"""Time-to-train of a mini benchmark over several seeds (what BENCHMARKS.md records).

Runs `mlpace train <benchmark> --scale mini --runs N` through the library and prints, per run,
the wall time-to-train (run_start to run_stop, as the log says), the process's CPU time in the
timed region, epochs and status; then the medians, the olympic score and how many converged.
On a machine shared with other jobs, the CPU time divided by the threads used is the better
estimate of the uncontended time; `--time-budget-s` lifts the wall-clock budget so that a slow
(loaded) machine does not abort runs that are still converging.

`suite` in place of a benchmark runs every mini benchmark once, as `mlpace suite --scale mini`
does (the same orchestration, `--workers` side by side: default one single-thread process per
core, the default of `mlpace suite` too; `--workers 1`: in turn in this process with
`--threads` threads), and adds the whole suite's wall and CPU time (worker processes, set-up
and evaluation included). Every line names the benchmark's target and its untrained quality
(the registry's `untrained_quality`), so that the figures show that the target needs learning.

    .venv/bin/python bench/bench_time_to_train.py resnet --runs 5 --threads 2 [--seed 1]
    .venv/bin/python bench/bench_time_to_train.py suite                  # as `mlpace suite`
    .venv/bin/python bench/bench_time_to_train.py suite --workers 1 --threads 2
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
from mlpace.harness.progress import format_quality
from mlpace.harness.timed_run import process_cpu_seconds
from mlpace.rules.benchmarks import BENCHMARKS
from mlpace.training.runs import TrainRequest
from mlpace.training.suite import default_workers, run_suite, usable_cpus


def _request(name: str, args: argparse.Namespace, out: Path) -> TrainRequest:
    overrides = parse_set_options(args.overrides)
    if args.benchmark == "suite":   # as in `mlpace suite`, keys name their benchmark
        overrides = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.split(".", 1)[0] == name}
    return TrainRequest(benchmark=name, runs=args.runs, out=out, seed=args.seed, system="bench",
                        data_dir=args.data_dir, overrides=overrides, time_budget_s=args.time_budget_s)


def report(result, threads: int) -> None:
    name, mini = result.spec.name, result.spec.mini
    print(f"{name}: target {format_quality(mini.target)}, untrained {format_quality(mini.untrained_quality)}")
    for i, o in enumerate(result.outcomes):
        print(f"{name} run {i}: seed {result.seeds[i]} {o.status:8s} epochs {o.epochs:3d} "
              f"wall {o.seconds:7.1f} s  cpu {o.cpu_seconds:7.1f} s  quality {format_quality(o.quality)}")
    converged = [o for o in result.outcomes if o.converged]
    if converged:
        print(f"{name} median of converged runs: wall {statistics.median(o.seconds for o in converged):.1f} s, "
              f"cpu/threads {statistics.median(o.cpu_seconds for o in converged) / threads:.1f} s, "
              f"epochs {statistics.median(o.epochs for o in converged)}")
    print(f"{name} converged {len(converged)} of {len(result.outcomes)}; olympic score: "
          f"{result.score.minutes if result.score else '-'} min ({threads} torch threads)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help="a benchmark name, or `suite` for every mini benchmark")
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (5; suite: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (suite: with --workers 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="suite: benchmarks side by side (default: as `mlpace suite`)")
    parser.add_argument("--only", default=None, help="suite: comma-separated benchmarks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="time budget per run (default: the benchmark's own)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    suite = args.benchmark == "suite"
    if args.runs is None:
        args.runs = 1 if suite else 5
    names = [n for n in BENCHMARKS if "mini" in implemented_scales(n)] if suite else [args.benchmark]
    if suite and args.only:
        names = [n for n in args.only.split(",") if n]
    workers = (args.workers or default_workers(len(names), "cpu")) if suite else 1
    threads = args.threads if workers == 1 else max(1, usable_cpus() // workers)
    torch.set_num_threads(threads)
    wall, cpu = time.perf_counter(), process_cpu_seconds()
    with tempfile.TemporaryDirectory() as out:
        requests = [_request(name, args, Path(out)) for name in names]
        if suite:
            print(f"suite: {len(names)} benchmarks, {workers} worker(s) of {threads} torch thread(s)", flush=True)
        done = run_suite(requests, workers, progress_for=lambda name: None, announce_for=lambda name: None,
                         say=lambda line: print(line, flush=True))
    for result in done.results:
        report(result, threads)
    if suite:
        total = sum(o.cpu_seconds for r in done.results for o in r.outcomes)
        print(f"suite ({len(names)} benchmarks, {args.runs} run(s) each, {workers} worker(s) x {threads} "
              f"thread(s)): wall {time.perf_counter() - wall:.1f} s, CPU {process_cpu_seconds() - cpu:.1f} s "
              f"(all processes; of it {total:.1f} s in the timed regions), "
              f"converged {sum(o.converged for r in done.results for o in r.outcomes)} of "
              f"{sum(len(r.outcomes) for r in done.results)}")


if __name__ == "__main__":
    main()
