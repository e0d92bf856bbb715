"""Offline throughput of the mlpace SUT vs a naive batch-size-1 loop, and LoadGen latencies.

    .venv/bin/python bench/bench_infer.py [--benchmarks resnet50 bert] [--seconds 10] [--threads N]

For each benchmark (mini scale, cached model; trained first if absent):
  naive      predict one sample at a time in a plain loop over the data set (no LoadGen)
  mlpace     LoadGen Offline through the batching SUT and worker pool (LoadGen's samples/s)
Both also per CPU second of the process (samples answered / process CPU time), which a
shared, oversubscribed machine disturbs far less than wall-clock rates.
and then the LoadGen-reported p90/p99 latency of every v1.1 scenario of the benchmark (runs of
--seconds each; Server at half the measured Offline rate). Runs are shortened, so LoadGen may
call them INVALID: these are measurements, not submissions. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def naive_rate(task, seconds: float) -> tuple[float, float]:
    """Samples/s of a batch-size-1 loop, the way a first script would serve the model: per
    wall-clock second, and per CPU second of this process (steadier on a shared machine)."""
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        task.predict([task.load(done % task.total)])
        done += 1
    return done / (time.perf_counter() - start), done / max(time.process_time() - cpu, 1e-9)


def counting(task):
    """The task with a predict that counts the samples it answers (for CPU-time rates)."""
    from dataclasses import replace
    counter = {"samples": 0}

    def predict(samples):
        counter["samples"] += len(samples)
        return task.predict(samples)
    return replace(task, predict=predict), counter


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=["resnet50", "bert", "dlrm"])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from mlpace.inference import models
    from mlpace.inference.runner import RunOptions, calibrate, default_user_settings, run_test
    from mlpace.rules.inference import scenarios_of

    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "device": args.device, "cpu_count": os.cpu_count(), "benchmarks": {}}
    out = Path(tempfile.mkdtemp(prefix="mlpace-bench-infer-"))
    ms = int(args.seconds * 1000)
    for name in args.benchmarks:
        if not models.available(name):
            print(f"{name}: not available in this mlpace, skipped", file=sys.stderr)
            continue
        task = models.get_binding(name).build(models.BuildOptions(
            data_dir=args.data_dir, threads=args.threads, device=args.device))
        calibration = calibrate(task)
        naive, naive_cpu = naive_rate(task, args.seconds)
        options = RunOptions(out=out, quick=True, system="bench")
        offline_settings = {**default_user_settings("Offline", calibration), "min_duration": ms}
        counted, counter = counting(task)
        cpu = time.process_time()
        offline = run_test(counted, "Offline", "performance", RunOptions(**{**options.__dict__, "user_settings": offline_settings}))
        offline_cpu = counter["samples"] / max(time.process_time() - cpu, 1e-9)
        row = {"naive_samples_per_s": round(naive, 1), "mlpace_offline_samples_per_s": offline["value"],
               "ratio": round(float(offline["value"] or 0) / naive, 2), "batch": offline["batch"],
               "naive_samples_per_cpu_s": round(naive_cpu, 1),
               "mlpace_offline_samples_per_cpu_s": round(offline_cpu, 1),
               "cpu_ratio": round(offline_cpu / naive_cpu, 2),
               "workers": offline["workers"], "scenarios": {}}
        for scenario in scenarios_of(name):
            if scenario == "Offline":
                continue
            settings = {**default_user_settings(scenario, calibration), "min_duration": ms}
            if scenario == "Server":
                settings["target_qps"] = round(0.5 * float(offline["value"] or calibration.batch_rate), 2)
            record = run_test(task, scenario, "performance", RunOptions(**{**options.__dict__, "user_settings": settings}))
            row["scenarios"][scenario] = {
                "result": record["result"], "metric": record["metric"], "value": record["value"],
                "p90_ms": round(record["latency_percentiles_ns"].get(90.0, 0) / 1e6, 3),
                "p99_ms": round(record["latency_percentiles_ns"].get(99.0, 0) / 1e6, 3),
                "target_qps": settings.get("target_qps")}
        results["benchmarks"][name] = row
        print(f"{name}: naive bs=1 {naive:.1f}/s, mlpace Offline {offline['value']}/s "
              f"(x{row['ratio']}, batch {row['batch']}, {row['workers']} workers); per CPU second: "
              f"naive {naive_cpu:.1f}, Offline {offline_cpu:.1f} (x{row['cpu_ratio']})")
        for scenario, s in row["scenarios"].items():
            extra = f" at {s['target_qps']} QPS" if s["target_qps"] else ""
            print(f"  {scenario}{extra}: p90 {s['p90_ms']} ms, p99 {s['p99_ms']} ms ({s['result']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
