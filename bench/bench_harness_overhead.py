"""Harness overhead: mlpace's timed run against a bare loop over the same workload.

Both loops train the same mini resnet (same seed, data and config) for the same number of
epochs with the same evaluations; the only difference is everything the harness adds (MLPerf
log lines, clock reads, stop checks, eval scheduling, the progress callbacks). The two are
interleaved (bare, harness, bare, harness ...) so that machine noise hits both alike, and the
median ratio is reported. Goal: overhead under 2 % of time-to-train.

Both wall time and the process's CPU time are measured: on a shared, loaded machine the CPU
time (with one torch thread) is the figure that other processes do not distort.

A second, direct measurement does not depend on machine noise at all: the harness drives a
workload whose steps and evaluations do nothing, with the mini resnet's exact shape (steps per
epoch, epochs, evaluations), so the time it takes is the harness's own cost; it is reported
against the measured time-to-train.

    .venv/bin/python bench/bench_harness_overhead.py [--epochs 3] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mlpace.benchmarks import make_workload
from mlpace.harness.progress import RichProgress
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext
from mlpace.rules.benchmarks import BenchmarkSpec, ScaleSpec


def never_reached(spec: BenchmarkSpec, epochs: int) -> BenchmarkSpec:
    """The same spec with an unreachable target, so that both loops run exactly `epochs`."""
    mini = ScaleSpec(spec.mini.model, spec.mini.dataset, target=2.0, eval_every=1,
                     max_epochs=epochs, time_budget_s=1e9)
    return BenchmarkSpec(**{**spec.__dict__, "mini": mini})


def fresh_workload(data_dir: Path, seed: int, epochs: int):
    w = make_workload("resnet", "mini", {})
    w.spec = never_reached(w.spec, epochs)
    w.prepare_data(data_dir)
    return w


def bare_loop(data_dir: Path, seed: int, epochs: int) -> tuple[float, float]:
    w = fresh_workload(data_dir, seed, epochs)
    w.setup(RunContext(seed=seed, data_dir=data_dir))
    start, cpu = time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        for _ in w.train_epoch(epoch):
            pass
        w.evaluate(epoch)
    return time.perf_counter() - start, time.process_time() - cpu


class CpuClock(RichProgress):
    """Reads the CPU clock at the harness's own run_start/run_stop points (start/finish)."""
    def __init__(self, show: bool):
        super().__init__()
        self.show = show

    def start(self, workload, seed, max_epochs):
        self.cpu0 = time.process_time()
        if self.show:
            super().start(workload, seed, max_epochs)

    def finish(self, outcome):
        self.cpu = time.process_time() - self.cpu0
        super().finish(outcome)


def harness_loop(data_dir: Path, seed: int, epochs: int, progress: bool) -> tuple[float, float]:
    w = fresh_workload(data_dir, seed, epochs)
    clock = CpuClock(progress)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_once(w, RunContext(seed=seed, data_dir=data_dir), Path(tmp) / "result_0.txt",
                           progress=clock)
    return outcome.seconds, clock.cpu


class NullWorkload:
    """The shape of a mini resnet run (steps, epochs, evals) with no work in it."""

    def __init__(self, real, steps_per_epoch: int, epochs: int):
        self.spec, self.scale, self.config = never_reached(real.spec, epochs), "mini", real.config
        self.steps_per_epoch, self.batch = steps_per_epoch, real.config.batch_size

    scale_spec = property(lambda self: self.spec.mini)
    prepare_data = setup = lambda self, *a: None
    hyperparameters = lambda self: {"global_batch_size": self.batch}
    initialized_tensors = lambda self: []
    train_samples = eval_samples = lambda self: 1

    def train_epoch(self, epoch):
        for _ in range(self.steps_per_epoch):
            yield self.batch

    def evaluate(self, epoch):
        return 0.5


def direct_overhead(data_dir: Path, epochs: int, repeats: int, progress: bool) -> float:
    real = fresh_workload(data_dir, 0, 1)
    real.setup(RunContext(seed=0, data_dir=data_dir))
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            outcome = run_once(NullWorkload(real, real.steps_per_epoch, epochs), RunContext(),
                               Path(tmp) / "r.txt", progress=RichProgress() if progress else None)
        times.append(outcome.seconds)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="include the rich progress bar")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--ttt-epochs", type=int, default=7, help="epochs of a typical mini run")
    parser.add_argument("--ttt-seconds", type=float, default=None,
                        help="a measured mini time-to-train to compare the direct cost with")
    parser.add_argument("--direct-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from mlpace.harness.datasets import data_root
    data_dir = data_root(args.data_dir)
    fresh_workload(data_dir, 0, 1)  # generate the data outside the measurement
    cost = direct_overhead(data_dir, args.ttt_epochs, 5, args.progress)
    print(f"direct: the harness alone takes {cost * 1000:.1f} ms for a {args.ttt_epochs}-epoch mini run"
          + (f" = {100 * cost / args.ttt_seconds:.3f} % of a {args.ttt_seconds:.0f} s time-to-train"
             if args.ttt_seconds else ""), flush=True)
    if args.direct_only:
        return
    wall, cpu = [], []
    for r in range(args.repeats):
        bw, bc = bare_loop(data_dir, r, args.epochs)
        hw, hc = harness_loop(data_dir, r, args.epochs, args.progress)
        wall.append(hw / bw)
        cpu.append(hc / bc)
        print(f"repeat {r}: wall bare {bw:.2f} s harness {hw:.2f} s (ratio {hw / bw:.4f}); "
              f"cpu bare {bc:.2f} s harness {hc:.2f} s (ratio {hc / bc:.4f})", flush=True)
    print(f"median overhead: wall {100 * (statistics.median(wall) - 1):+.2f} %, "
          f"cpu {100 * (statistics.median(cpu) - 1):+.2f} % "
          f"({args.epochs} epochs x {args.repeats} repeats, {args.threads} threads, "
          f"progress bar {'on' if args.progress else 'off'})")


if __name__ == "__main__":
    main()
