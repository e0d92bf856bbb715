"""`mlpace infer`: benchmarks × scenarios × modes through LoadGen, one summary table.

For each benchmark the task (model, data, accuracy script) is built once; the backend is
calibrated briefly (untimed) to fill the user.conf values a submitter would choose
(`target_qps`, `target_latency`) unless the user gave them; then each scenario runs in
performance and/or accuracy mode. The records are printed as a table and written to
`<out>/mlpace_infer_summary.json`; each run folder also holds its own `mlpace_summary.json`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from mlpace.errors import MlpaceError
from mlpace.inference import models
from mlpace.inference.runner import RunOptions, calibrate, default_user_settings, run_test, write_json
from mlpace.rules import inference as rules


@dataclass
class InferRequest:
    benchmarks: list[str]
    scenarios: list[str] | None = None          # None: every v1.1 scenario of each benchmark
    modes: list[str] = field(default_factory=lambda: ["performance"])
    build: models.BuildOptions = field(default_factory=models.BuildOptions)
    run: RunOptions = field(default_factory=lambda: RunOptions(out=Path("mlpace-results")))
    find_peak: bool = False
    target_fraction: float = 0.99


def scenarios_for(name: str, asked: list[str] | None) -> list[str]:
    allowed = rules.scenarios_of(name)
    if not asked:
        return list(allowed)
    wrong = [s for s in asked if s not in allowed]
    if wrong:
        raise MlpaceError(f"{name} has no {', '.join(wrong)} scenario in MLPerf Inference v1.1 "
                          f"(it has {', '.join(allowed)})")
    return asked


def reproduce_command(request: InferRequest, name: str, scenario: str) -> str:
    """The `mlpace infer` command line that repeats one benchmark and scenario of `request`
    (for the submission's measurements README)."""
    build, run = request.build, request.run
    parts = ["mlpace", "infer", name, "--scenario", scenario, "--scale", build.scale,
             "--accuracy-target", f"{request.target_fraction * 100:g}",
             "--backend", build.backend, "--device", build.device, "--precision", build.precision,
             "--threads", str(build.threads), "--division", run.division, "--org", run.org,
             "--system", run.system]
    modes = request.modes
    parts += ["--mode", "both" if len(modes) == 2 else modes[0]]
    for flag, value in (("--data-dir", build.data_dir), ("--checkpoint", build.checkpoint),
                        ("--limit", build.limit), ("--workers", run.workers),
                        ("--max-batch", run.max_batch), ("--timeout", run.timeout_s)):
        if value is not None:
            parts += [flag, str(value)]
    user = run.user_settings or {}
    for key, flag in (("target_qps", "--target-qps"), ("target_latency", "--target-latency")):
        if key in user:
            parts += [flag, str(user[key])]
    parts += [f"--set={key}={value}" for key, value in build.train_overrides.items()]
    if run.quick:
        parts.append("--quick")
    if request.find_peak:
        parts.append("--find-peak")
    return " ".join(shlex.quote(p) for p in parts)


def write_system_description(options: RunOptions) -> Path:
    from mlpace.submission.sysinfo import capture_system_description
    path = options.out / options.division / options.org / "systems" / f"{options.system}.json"
    if not path.exists():   # never overwrite a description the user has edited
        desc = capture_system_description(options.system, submitter=options.org, division=options.division)
        write_json(path, desc)
    return path


def infer(request: InferRequest, log: Callable[[str], None] = print) -> list[dict]:
    """Run every requested test; return the records (also written as JSON)."""
    from mlpace.inference.peak import find_peak_offline, find_peak_server

    for name in request.benchmarks:   # fail before any work when a benchmark is unknown or unavailable
        models.get_binding(name)
        if request.target_fraction not in rules.fractions(name):
            raise MlpaceError(f"{name} has accuracy targets "
                              f"{', '.join(f'{t * 100:g}' for t in rules.fractions(name))} % only")
    plan = [(name, scenarios_for(name, request.scenarios)) for name in request.benchmarks]
    write_system_description(request.run)
    records: list[dict] = []
    for name, scenarios in plan:
        log(f"{name}: preparing model and data ({request.build.scale})")
        task = models.get_binding(name).build(request.build)
        training = task.notes
        if training and training.get("status") != "success":
            log(f"  note: the cached mini model's training ended {training.get('status')} "
                f"({training.get('reason')}) at quality {training.get('quality')}")
        calibration = calibrate(task, request.run.max_batch)
        for scenario in scenarios:
            user = {**default_user_settings(scenario, calibration, request.run.quick),
                    **(request.run.user_settings or {})}
            options = replace(request.run, user_settings=user, target_fraction=request.target_fraction)
            for mode in request.modes:
                log(f"{name} {scenario} {mode}{' (quick)' if options.quick else ''}")
                if mode == "performance" and request.find_peak and scenario in ("Server", "Offline"):
                    search = find_peak_server if scenario == "Server" else find_peak_offline
                    peak = search(task, options, calibration.batch_rate * (0.5 if scenario == "Server" else 1), log)
                    record = dict(peak.confirmed or {"benchmark": task.result_name(request.target_fraction),
                                                     "scenario": scenario, "mode": mode,
                                                     "quick": options.quick, "result": "ERROR",
                                                     "error": peak.error, "folder": str(options.out)})
                    record["peak_qps"] = peak.best_qps
                    record["peak_trials"] = peak.trials
                else:
                    record = run_test(task, scenario, mode, options)
                record["model_training"] = training
                record["fp32_reference_score"] = task.reference_score
                record["scale"] = request.build.scale
                record["build"] = {"scale": request.build.scale, "backend": request.build.backend,
                                   "device": request.build.device, "precision": request.build.precision,
                                   "checkpoint": str(request.build.checkpoint) if request.build.checkpoint else None}
                record["command"] = reproduce_command(request, name, scenario)
                if record.get("folder") and Path(record["folder"]).is_dir():
                    write_json(Path(record["folder"]) / "mlpace_summary.json", record)
                records.append(record)
                if record.get("error"):
                    log(f"  {record['result']}: {record['error']} (logs in {record['folder']})")
    write_json(request.run.out / "mlpace_infer_summary.json", records)
    return records


def _latency_ms(record: dict, percentile: float) -> str:
    value = record.get("latency_percentiles_ns", {}).get(percentile)
    return f"{value / 1e6:.2f}" if isinstance(value, (int, float)) else ""


def _metric(record: dict) -> tuple[str, str]:
    """A short metric name and value for the table (LoadGen's names are long)."""
    if record.get("mode") == "accuracy":
        acc = record.get("accuracy", {})
        sign = "<=" if acc.get("direction") == "min" else ">="      # WER: lower is better
        return f"{sign} {acc.get('target', 0):.4f}", f"{acc.get('score', float('nan')):.4f}"
    name, value = record.get("metric") or "", record.get("value")
    if not isinstance(value, (int, float)):
        return name, ""
    if "latency" in name:
        percentile = name.split("th", 1)[0].split(".")[0]
        return f"p{percentile} ms", f"{value / 1e6:.2f}"
    return "samples/s", f"{value:.1f}"


def table_rows(records: list[dict]) -> list[list[str]]:
    """Benchmark, scenario, mode, result, metric, value, p90/p99 latency (ms)."""
    rows = []
    for r in records:
        metric, value = _metric(r)
        result = r.get("result") or ""
        if r.get("quick") and result in ("VALID", "PASS"):
            result += "*"
        if r.get("peak_qps"):
            metric += f" (peak {r['peak_qps']:.1f} QPS)"
        rows.append([r.get("benchmark", ""), r.get("scenario", ""), r.get("mode", "")[:4], result,
                     metric, value, _latency_ms(r, 90.0), _latency_ms(r, 99.0)])
    return rows


TABLE_HEADER = ["benchmark", "scenario", "mode", "result", "metric", "value", "p90 ms", "p99 ms"]
# accuracy rows: metric is the target (the FP32 score times 0.99 or 0.999), value the score
