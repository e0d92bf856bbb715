"""Does the SUT cost anything LoadGen can see? Bare model vs LoadGen Offline vs peak Server, one run.

    .venv/bin/python bench/bench_infer.py [--benchmarks resnet50 bert dlrm] [--seconds 5]
                                          [--repeats 3] [--threads N] [--no-server]

For each benchmark (mini scale, cached model; trained first if absent), side by side:
  (a) bare     the model's own batched throughput: the same predict function, the same batch
               size as the SUT, a plain loop over samples already in memory (no LoadGen)
  (b) offline  LoadGen Offline through mlpace's SUT (LoadGen's samples/s)
  (c) server   the peak Server QPS `--find-peak` finds (short runs, then a run LoadGen calls
               VALID), with every run shortened to --seconds (`RunOptions.test_minimums`): a
               measurement, not a submission
(a) and (b) alternate --repeats times, so both see the same load; the figures are medians and
the ratio is the median of the per-pair ratios. Goals (issue 15): (b)/(a) >= 0.95 and
(c)/(b) >= 0.80. The load average before and after is reported: the machine may be shared.
Also per CPU second, and the model's share of the process CPU while LoadGen serves (CPU of
the threads inside predict / CPU of the whole process, first batch to last answer): 1.0 would
mean LoadGen and the SUT cost nothing; contention moves both parts alike, so it stays steady
on a busy machine where wall-clock rates swing by 2x from one second to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

OFFLINE_GOAL, SERVER_GOAL = 0.95, 0.80


def bare_rate(task, samples: list, batch: int, seconds: float) -> tuple[float, float]:
    """Samples per second of predict() over in-memory batches in a plain loop: per wall-clock
    second, and per CPU second of this process (which a shared machine disturbs far less)."""
    batches = [samples[i:i + batch] for i in range(0, len(samples) - batch + 1, batch)] or [samples]
    done, n = 0, 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        chunk = batches[n % len(batches)]
        task.predict(chunk)
        done, n = done + len(chunk), n + 1
    return done / (time.perf_counter() - start), done / max(time.process_time() - cpu, 1e-9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", nargs="+", default=["resnet50", "bert", "dlrm"])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating (a)/(b) pairs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, help="SUT worker threads (default: mlpace's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--no-server", action="store_true", help="skip (c), the peak Server search")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from mlpace.inference import models
    from mlpace.inference.peak import find_peak_server
    from mlpace.inference.runner import (RunOptions, calibrate, performance_sample_count, run_test,
                                         server_max_batch)
    from mlpace.rules.inference import scenarios_of

    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "device": args.device, "cpu_count": os.cpu_count(),
               "load_before": os.getloadavg(), "benchmarks": {}}
    out = Path(tempfile.mkdtemp(prefix="mlpace-bench-infer-"))
    ms = int(args.seconds * 1000)
    for name in args.benchmarks:
        if not models.available(name):
            print(f"{name}: not available in this mlpace, skipped", file=sys.stderr)
            continue
        task = models.get_binding(name).build(models.BuildOptions(
            data_dir=args.data_dir, threads=args.threads, device=args.device))
        batch = min(task.max_batch, task.total)
        count = performance_sample_count(task)
        samples = [task.load(i % task.total) for i in range(task.total)]
        # Both sides read the same in-memory samples: LoadGen's untimed loading is then free,
        # and the CPU-second rates below count only serving.
        task = replace(task, load=lambda index: samples[index % len(samples)])
        samples = [samples[i % len(samples)] for i in range(count)]     # what the QSL holds
        task.predict(samples[:batch])                                  # warm-up
        options = RunOptions(out=out / name, system="bench", workers=args.workers,
                             test_minimums={"min_duration": ms, "min_query_count": 1})
        # CPU seconds of the whole process (LoadGen's threads, the SUT's, the model's) from the
        # first batch to the last answer: the serving window, without LoadGen's set-up.
        # The model's own share of it (CPU of the threads inside predict) is the steady figure
        # of what LoadGen and the SUT cost: contention moves both parts alike.
        counted = {"samples": 0, "first": None, "last": 0.0, "model": 0.0}
        inner = task.predict

        def predict(batch_samples, inner=inner, counted=counted):
            if counted["first"] is None:
                counted["first"] = time.process_time()
            started = time.thread_time()
            outputs = inner(batch_samples)
            counted["model"] += time.thread_time() - started
            counted["samples"] += len(batch_samples)
            counted["last"] = time.process_time()
            return outputs
        served = replace(task, predict=predict)
        bare, offline, ratios, cpu_ratios, model_share = [], [], [], [], []
        for _ in range(args.repeats):
            bare.append(bare_rate(task, samples, batch, args.seconds))
            settings = {"target_qps": round(bare[-1][0], 2)}     # LoadGen sizes its query from it
            counted.update(samples=0, first=None, model=0.0)
            record = run_test(served, "Offline", "performance", RunOptions(**{**options.__dict__, "user_settings": settings}))
            offline.append((float(record["value"] or 0.0),
                            counted["samples"] / max(counted["last"] - counted["first"], 1e-9)))
            ratios.append(offline[-1][0] / bare[-1][0])
            cpu_ratios.append(offline[-1][1] / bare[-1][1])
            model_share.append(counted["model"] / max(counted["last"] - counted["first"], 1e-9))
        row = {"batch": batch, "workers": record["workers"], "performance_samples": count,
               "bare_samples_per_s": [round(x[0], 1) for x in bare],
               "offline_samples_per_s": [round(x[0], 1) for x in offline],
               "bare_median": round(statistics.median(x[0] for x in bare), 1),
               "offline_median": round(statistics.median(x[0] for x in offline), 1),
               "offline_over_bare": round(statistics.median(ratios), 3),
               "offline_over_bare_per_cpu_s": round(statistics.median(cpu_ratios), 3),
               "model_share_of_serving_cpu": round(statistics.median(model_share), 3)}
        print(f"{name}: (a) bare batch {batch}: {row['bare_median']} samples/s, (b) LoadGen Offline "
              f"({row['workers']} worker): {row['offline_median']} samples/s; (b)/(a) = "
              f"{row['offline_over_bare']} per wall second, {row['offline_over_bare_per_cpu_s']} per "
              f"CPU second; the model's share of the serving CPU {row['model_share_of_serving_cpu']} "
              f"(goal >= {OFFLINE_GOAL}: "
              f"{'ok' if row['offline_over_bare'] >= OFFLINE_GOAL else 'MISSED'}); pairs {[round(r, 3) for r in ratios]}",
              flush=True)
        if not args.no_server and "Server" in scenarios_of(name):
            ceiling = row["offline_median"]
            # LoadGen's early stopping wants some 500 queries under the p99 bound to call it VALID.
            calibration = calibrate(task)
            server_options = RunOptions(**{**options.__dict__, "test_minimums": {
                "min_duration": ms, "min_query_count": 600},
                "max_batch": server_max_batch(task, calibration)})
            started = time.monotonic()
            peak = find_peak_server(task, server_options, 0.5 * ceiling, ceiling=ceiling)
            row["server"] = {"peak_qps": round(peak.best_qps, 1), "valid": peak.error is None,
                             "batch": server_options.max_batch,
                             "error": peak.error, "short_runs": peak.short_runs,
                             "full_runs": peak.full_runs, "search_s": round(time.monotonic() - started, 1),
                             "server_over_offline": round(peak.best_qps / ceiling, 3) if peak.error is None else None}
            s = row["server"]
            verdict = (f"(c)/(b) = {s['server_over_offline']} (goal >= {SERVER_GOAL}) "
                       f"{'ok' if s['server_over_offline'] >= SERVER_GOAL else 'MISSED'}"
                       if s["valid"] else f"no VALID run: {peak.error}")
            print(f"  (c) peak Server {s['peak_qps']} QPS (batches up to {s['batch']}): {verdict}; "
                  f"search: {peak.report()}", flush=True)
        results["benchmarks"][name] = row
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before'][0]:.1f}, after {results['load_after'][0]:.1f}; "
          f"{args.threads} torch threads on {os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
