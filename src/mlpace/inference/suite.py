"""`mlpace infer`: benchmarks × scenarios × modes through LoadGen, one summary table.

For each benchmark the task (model, data, accuracy script) is built once; the backend is
calibrated briefly (untimed) to fill the user.conf values a submitter would choose
(`target_qps`, `target_latency`) unless the user gave them; then each scenario runs in
performance and/or accuracy mode. The records are printed as a table and written to
`<out>/mlpace_infer_summary.json`; each run folder also holds its own `mlpace_summary.json`.

`submission=True` (`mlpace infer --submission`) runs, per benchmark and scenario, everything
one v1.1 result needs (`run_submission`): short measurements that set target_qps /
target_latency, the full-length performance run, the accuracy run, the compliance audits and
their verification, with an estimate of the wall time printed before the long runs start.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from mlpace.errors import MlpaceError
from mlpace.inference import models
from mlpace.inference import settings as conf
from mlpace.inference.runner import (Calibration, RunOptions, calibrate, compliance_dir,
                                     default_user_settings, results_dir,
                                     prepare_server, run_context, run_test, user_values)
from mlpace.inference.task import InferenceTask
from mlpace.io import json_text, write_atomic
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
    submission: bool = False                    # everything one result needs (run_submission)


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
    if request.submission:
        parts.append("--submission")
    return " ".join(shlex.quote(p) for p in parts)


def write_system_description(options: RunOptions) -> Path:
    from mlpace.submission.sysinfo import capture_system_description
    path = options.out / options.division / options.org / "systems" / f"{options.system}.json"
    if not path.exists():   # never overwrite a description the user has edited
        desc = capture_system_description(options.system, submitter=options.org, division=options.division)
        write_atomic(path, json_text(desc))
    return path


def infer(request: InferRequest, log: Callable[[str], None] = print) -> list[dict]:
    """Run every requested test; return the records (also written as JSON)."""
    from mlpace.inference.peak import OFFLINE_MARGIN, find_peak_offline, find_peak_server, measure_offline

    for name in request.benchmarks:   # fail before any work when a benchmark is unknown or unavailable
        models.get_binding(name)
        if request.target_fraction not in rules.fractions(name):
            raise MlpaceError(f"{name} has accuracy targets "
                              f"{', '.join(f'{t * 100:g}' for t in rules.fractions(name))} % only")
    plan = [(name, scenarios_for(name, request.scenarios)) for name in request.benchmarks]
    request = replace(request, run=replace(request.run, scale=request.build.scale))  # every record states it
    if request.submission and request.run.quick:
        raise MlpaceError("--submission runs at full length; leave out --quick (or try things "
                          "with --quick alone)")
    write_system_description(request.run)
    records: list[dict] = []
    if request.submission:
        results = sum(len(scenarios) for _, scenarios in plan)
        log(f"submission: {results} result{'s' if results != 1 else ''}, each three or four "
            f"full-length runs of >= 10 min (performance, TEST01, TEST05, and TEST04-B where "
            f"required): at least {results * 30 / 60:.1f} h; each result's estimate follows its "
            "short measurements")
    all_request = request
    for name, scenarios in plan:
        binding = models.get_binding(name)
        # `--backend auto` becomes this benchmark's backend: records and commands state it.
        request = replace(all_request, build=replace(all_request.build,
                                                     backend=binding.backend_for(all_request.build)))
        log(f"{name}: preparing model and data ({request.build.scale}, {request.build.backend})")
        task = binding.build(request.build)
        training = task.notes
        if training and training.get("status") != "success":
            log(f"  note: the cached mini model's training ended {training.get('status')} "
                f"({training.get('reason')}) at quality {training.get('quality')}")
        calibration = calibrate(task, request.run.max_batch)
        for scenario in scenarios:
            run = request.run
            if scenario == "Server":
                run = replace(run, max_batch=prepare_server(task, calibration, run.max_batch))
            if request.submission:
                options = replace(run, target_fraction=request.target_fraction)
                for record in run_submission(task, scenario, options, calibration, log):
                    records.append(_annotated(record, request, name, scenario, task))
                continue
            user = {**default_user_settings(scenario, calibration, request.run.quick),
                    **(request.run.user_settings or {})}
            options = replace(run, user_settings=user, target_fraction=request.target_fraction)
            if (scenario == "Offline" and not options.quick and not request.find_peak
                    and "target_qps" not in (request.run.user_settings or {})):
                # A full Offline run lasts 1.1 x 600 s x target_qps / achieved rate: measure the
                # rate through LoadGen first (seconds) rather than guess it from the bare model,
                # and ask for a little more (see mlpace.inference.peak).
                rate = measure_offline(task, options, calibration.batch_rate, log)
                options = replace(options, user_settings={
                    **user, "target_qps": round(rate * OFFLINE_MARGIN, 3)})
            for mode in request.modes:
                log(f"{name} {scenario} {mode}{' (quick)' if options.quick else ''}")
                if mode == "performance" and request.find_peak and scenario in ("Server", "Offline"):
                    if scenario == "Server":   # first estimate: the Offline rate
                        ceiling = measure_offline(task, options, calibration.batch_rate, log)
                        peak = find_peak_server(task, options, 0.5 * ceiling, log, ceiling=ceiling)
                    else:
                        peak = find_peak_offline(task, options, calibration.batch_rate, log)
                    log(f"  peak search: {peak.report()}")
                    record = _peak_record(task, scenario, options, peak)
                else:
                    record = run_test(task, scenario, mode, options)
                records.append(_annotated(record, request, name, scenario, task))
                if record.get("error"):
                    log(f"  {record['result']}: {record['error']} (logs in {record['folder']})")
    write_atomic(request.run.out / "mlpace_infer_summary.json", json_text(records))
    return records


def _annotated(record: dict, request: InferRequest, name: str, scenario: str,
               task: InferenceTask) -> dict:
    """A run's record with what `mlpace package` needs to describe it (scale, model build, the
    exact command), saved again as the run folder's mlpace_summary.json."""
    build = request.build
    record["model_training"] = task.notes
    record["fp32_reference_score"] = task.reference_score
    record["build"] = {"scale": build.scale, "backend": build.backend, "device": build.device,
                       "precision": build.precision,
                       "checkpoint": str(build.checkpoint) if build.checkpoint else None}
    record["command"] = reproduce_command(request, name, scenario)
    if record.get("folder") and Path(record["folder"]).is_dir():
        write_atomic(Path(record["folder"]) / "mlpace_summary.json", json_text(record))
    return record


def _peak_record(task: InferenceTask, scenario: str, options: RunOptions, peak) -> dict:
    """The confirmed run's record with the search's facts; an ERROR record when none ran."""
    record = dict(peak.confirmed or {"benchmark": task.result_name(options.target_fraction),
                                     "scenario": scenario, "mode": "performance",
                                     **run_context(options), "quick": options.quick,
                                     "result": "ERROR", "folder": str(options.out)})
    record.update({"peak_qps": peak.best_qps, "peak_trials": peak.trials,
                   "peak_search": {"short_runs": peak.short_runs, "full_runs": peak.full_runs,
                                   "short_s": round(peak.short_s, 1), "full_s": round(peak.full_s, 1)}})
    if peak.error:
        record["error"] = peak.error
        record["valid_for_submission"] = False
    return record


# --- submission mode ------------------------------------------------------------------------

SEARCH_ESTIMATE_S = 60.0      # the short runs of a Server peak search, roughly


def estimate_submission_s(task: InferenceTask, scenario: str, options: RunOptions,
                          rate: float) -> dict[str, float]:
    """Seconds each step of `run_submission` should take at `options.user_settings`.

    `rate`: the measured Offline samples/s (accuracy runs and TEST04 of the rate scenarios)."""
    values = user_values(task, scenario, options)
    resolved = conf.resolve(task.loadgen_model, scenario, conf.parse_conf(
        conf.user_conf_text(task.loadgen_model, scenario, values), "user.conf"))
    performance = conf.expected_duration_s(resolved, "performance", task.total)
    if scenario in ("Offline", "Server"):
        per_sample = 1.0 / max(float(resolved.values.get("target_qps", rate)), 1e-9)
    else:
        per_sample = resolved.number("target_latency", 10) / 1000.0
        if scenario == "MultiStream":
            per_sample /= max(resolved.number("samples_per_query", 8), 1)
    steps = {"performance": performance, "accuracy": task.total * per_sample}
    for test in rules.compliance_tests_of(task.loadgen_model, scenario):
        # LoadGen 6 ends only Offline's TEST04-A early (one query of the performance samples);
        # every other audit, TEST04-B's same-sample query included, runs at full length.
        short = test == "TEST04-A" and scenario == "Offline"
        steps[test] = int(values["performance_sample_count_override"]) * per_sample if short else performance
    if scenario == "Server" and not options.test_minimums:
        steps = {"peak search (short runs)": SEARCH_ESTIMATE_S, **steps}
    return steps


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _failed(record: dict) -> bool:
    return bool(record.get("error")) or not record.get("valid")


def run_submission(task: InferenceTask, scenario: str, options: RunOptions,
                   calibration: Calibration, log: Callable[[str], None] = print) -> list[dict]:
    """Everything one v1.1 result needs, in the official layout; returns every run's record.

    1. short measurements (`mlpace.inference.peak`): the Offline rate; the latency
       (SingleStream, MultiStream); the Server peak search's short runs;
    2. the full-length performance run at the measured settings, which LoadGen must call
       VALID (else the audits would fail too: they stop here);
    3. the accuracy run, at the same settings;
    4. the compliance audits (TEST01, TEST04-A/B where required, TEST05) at the same settings,
       and their verification (`mlpace.inference.compliance`).
    """
    from mlpace.inference import peak

    started = time.monotonic()
    benchmark = task.result_name(options.target_fraction)
    log(f"{benchmark} {scenario}: submission run — short measurements first")
    rate = peak.measure_offline(task, options, calibration.batch_rate, log) \
        if scenario in ("Offline", "Server") else calibration.batch_rate
    user = dict(options.user_settings or {})
    asked = "target_qps" in user or "target_latency" in user     # the user's own settings stand
    if scenario == "Offline":
        user.setdefault("target_qps", round(rate * peak.OFFLINE_MARGIN, 3))
    elif scenario == "Server":
        user.setdefault("target_qps", round(0.8 * rate, 3))     # for the estimate; searched below
    else:
        guess_ms = calibration.single_latency_s * 1000 * (8 if scenario == "MultiStream" else 1)
        user.setdefault("target_latency", round(peak.measure_latency_ms(
            task, scenario, options, guess_ms, log), 3))
    options = replace(options, user_settings=user)
    steps = estimate_submission_s(task, scenario, options, rate)
    log(f"{benchmark} {scenario}: estimated {_minutes(sum(steps.values()))} from now ("
        + ", ".join(f"{name} {_minutes(s)}" for name, s in steps.items())
        + "), more if a full-length run has to be repeated")

    if scenario == "Server":
        search = peak.find_peak_server(task, options, 0.5 * rate, log, ceiling=rate)
        log(f"  peak search: {search.report()}")
        performance = _peak_record(task, scenario, options, search)
    elif scenario == "Offline":
        performance = run_test(task, scenario, "performance", options) if asked else \
            peak.confirm_offline(task, options, rate, log)
    else:
        performance = run_test(task, scenario, "performance", options)
    records = [performance]
    if _failed(performance):
        performance["error"] = performance.get("error") or (
            f"the full-length performance run was {performance.get('result')}; accuracy run "
            "and audits skipped (they would compare against an invalid result)")
        log(f"  {performance['error']} (logs in {performance.get('folder')})")
        return records
    # Everything after runs at the settings of the valid run.
    final = {key: performance["settings"][key] for key in ("target_qps", "target_latency")
             if key in performance.get("settings", {}) and key in user}
    options = replace(options, user_settings={**user, **final})

    accuracy = run_test(task, scenario, "accuracy", options)
    records.append(accuracy)
    log(f"  accuracy: {accuracy['result']}")
    audits = {}
    for test in rules.compliance_tests_of(task.loadgen_model, scenario):
        audits[test] = run_test(task, scenario, "performance", replace(options, audit=test))
        log(f"  {test} run: {audits[test].get('result')}")
        records.append(audits[test])
    verdicts = _verify(task, options, benchmark, scenario, audits)
    for test, record in audits.items():
        verdict = verdicts.get("TEST04" if test.startswith("TEST04") else test, {})
        record["loadgen_result"] = record.get("result")
        record["compliance"] = verdict
        record["result"] = "PASS" if verdict.get("passed") else "FAIL"
    performance["compliance"] = {test: bool(v.get("passed")) for test, v in verdicts.items()}
    log(f"{benchmark} {scenario}: done in {_minutes(time.monotonic() - started)}; audits: "
        + ", ".join(f"{t} {'PASS' if v.get('passed') else 'FAIL'}" for t, v in verdicts.items()))
    return records


def _verify(task: InferenceTask, options: RunOptions, benchmark: str, scenario: str,
            audits: dict[str, dict]) -> dict[str, dict]:
    """Each audit's verification; a missing or broken log is a failed audit, said why."""
    from mlpace.inference import compliance

    results = results_dir(options, benchmark, scenario)
    audit_root = compliance_dir(options, benchmark, scenario)
    checks = {"TEST01": lambda: compliance.verify_test01(task, options.target_fraction, results,
                                                         audit_root / "TEST01"),
              "TEST04": lambda: compliance.verify_test04(audit_root),
              "TEST05": lambda: compliance.verify_test05(results, audit_root / "TEST05")}
    verdicts = {}
    for name, check in checks.items():
        if not any(test.startswith(name) for test in audits):
            continue
        try:
            verdicts[name] = check()
        except MlpaceError as err:
            verdicts[name] = {"passed": False, "error": str(err)}
    return verdicts


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
        if (r.get("quick") or r.get("shortened")) and result in ("VALID", "PASS"):
            result += "*"
        if r.get("peak_qps"):
            metric += f" (peak {r['peak_qps']:.1f} QPS)"
        mode = r.get("audit") or r.get("mode", "")[:4]
        rows.append([r.get("benchmark", ""), r.get("scenario", ""), mode, result,
                     metric, value, _latency_ms(r, 90.0), _latency_ms(r, 99.0)])
    return rows


TABLE_HEADER = ["benchmark", "scenario", "mode", "result", "metric", "value", "p90 ms", "p99 ms"]
# accuracy rows: metric is the target (the FP32 score times 0.99 or 0.999), value the score
