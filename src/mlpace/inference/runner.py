"""One LoadGen test (a model, a scenario, a mode) with a watchdog, in the official layout.

    <out>/<division>/<org>/results/<system>/<benchmark>/<scenario>/performance/run_1/
    <out>/<division>/<org>/results/<system>/<benchmark>/<scenario>/accuracy/
    <out>/<division>/<org>/measurements/<system>/<benchmark>/<scenario>/{mlperf.conf,user.conf}
    <out>/<division>/<org>/compliance/<system>/<benchmark>/<scenario>/<TEST0x>/performance/run_1/
    <out>/<division>/<org>/systems/<system>.json

A compliance audit (`RunOptions.audit`, see `mlpace.inference.compliance`) runs in its own
folder with its audit.config beside LoadGen's logs, at the result's settings.

LoadGen's own files land in the run folder; mlpace adds `mlpace_summary.json` (the parsed
summary plus what mlpace knows: scale, division, round and date, which the results store
files the result under; quick or not, errors, accuracy target and verdict) and, in
accuracy mode, `accuracy.txt` exactly as the official accuracy scripts print it, with the
accuracy log's hash. `mlpace package` keeps mlpace_summary.json out of the submission tree.

The watchdog: LoadGen blocks until every query it issued is answered, so a hung or very slow
SUT would hang it. The test runs in a thread; past its deadline the SUT is aborted (all
outstanding queries answered empty), LoadGen finishes and writes its logs, and the result
says ERROR with the reason.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference import settings as conf
from mlpace.inference.sut import BatchingSUT, SampleLibrary, policy_for
from mlpace.inference.task import InferenceTask
from mlpace.inference.watchdog import GRACE_S, Watchdog
from mlpace.io import json_text, write_atomic
from mlpace.rules import inference as inference_rules


@dataclass
class RunOptions:
    out: Path
    scale: str | None = None              # BuildOptions.scale, for the record (None: not known)
    division: str = "open"
    org: str = "mlpace"
    system: str = "local"
    quick: bool = False
    target_fraction: float = 0.99
    workers: int | None = None
    max_batch: int | None = None
    # How long a Server worker waits for more samples before it runs a batch (0: it takes what
    # is waiting; see policy_for). A knob for measuring, not for submitting.
    server_wait_s: float = 0.0
    timeout_s: float | None = None        # watchdog deadline; None: from the settings
    user_settings: dict | None = None     # user.conf keys (target_qps, target_latency, ...)
    audit: str | None = None              # a compliance test (TEST01, TEST04-A, ...) or None
    # Tests only, never a user option: replaces the v1.1 minimum duration and query counts so
    # that a whole submission runs in seconds; every result it touches is not valid for submission.
    test_minimums: dict | None = None

    @property
    def shortened(self) -> bool:
        return self.quick or bool(self.test_minimums)


def results_dir(options: RunOptions, benchmark: str, scenario: str) -> Path:
    return (options.out / options.division / options.org / "results" / options.system
            / benchmark / scenario)


def compliance_dir(options: RunOptions, benchmark: str, scenario: str) -> Path:
    return (options.out / options.division / options.org / "compliance" / options.system
            / benchmark / scenario)


def run_dir(options: RunOptions, benchmark: str, scenario: str, mode: str) -> Path:
    if options.audit:
        return compliance_dir(options, benchmark, scenario) / options.audit / "performance/run_1"
    return results_dir(options, benchmark, scenario) / (
        "performance/run_1" if mode == "performance" else "accuracy")


def measurements_dir(options: RunOptions, benchmark: str, scenario: str) -> Path:
    return (options.out / options.division / options.org / "measurements" / options.system
            / benchmark / scenario)


def user_values(task: InferenceTask, scenario: str, options: RunOptions) -> dict:
    """The user.conf keys for this run: the user's, plus what quick mode and the data set need."""
    values = dict(options.user_settings or {})
    values.update(options.test_minimums or {})
    values.setdefault("performance_sample_count_override",
                      task.total if options.quick else performance_sample_count(task))
    if options.quick:
        for key, value in conf.QUICK_OVERRIDES.items():
            values.setdefault(key, value)
        if scenario == "MultiStream":
            values["min_query_count"] = min(int(values["min_query_count"]), conf.QUICK_MULTISTREAM_QUERIES)
    return values


def performance_sample_count(task: InferenceTask) -> int:
    """The v1.1 count: the official one, or the whole data set where mlperf.conf says so (0).

    A mini data set can be smaller: the performance run then presents it several times over
    (see `run_test`), as a real one would present its 1024 of 50,000 images."""
    # The v1.1 checker's minimum (3d-unet's mlperf.conf says 0: the whole data set, 16 or more).
    known = inference_rules.models_of(task.loadgen_model)
    official = known[0].performance_sample_count if known else task.total
    conf_values = conf.resolve(task.loadgen_model, "Offline", {}).values
    if int(float(conf_values.get("performance_sample_count_override", 0))) == 0:
        return max(task.total, official)
    return official


def _decode_accuracy_log(path: Path, dtype: str) -> dict[int, np.ndarray]:
    try:
        entries = json.loads(path.read_text() or "[]")
    except (OSError, ValueError) as err:
        raise MlpaceError(f"cannot read LoadGen accuracy log {path}: {err}") from None
    return {int(e["qsl_idx"]): np.frombuffer(bytes.fromhex(e["data"]), dtype=dtype) for e in entries}


def accuracy_headline(task: InferenceTask, outputs: dict[int, np.ndarray], score: float) -> str:
    """The line the official accuracy script of the benchmark prints, in its exact form: the
    submission checker reads these (its ACC_PATTERN regexes), and so do parsers of published
    results. Scores are fractions in mlpace; the scripts print percent (DICE: a fraction)."""
    if task.metric == "accuracy":       # accuracy-imagenet.py: over the samples in the log
        return f"accuracy={score * 100:.3f}%, good={round(score * len(outputs))}, total={len(outputs)}"
    if task.metric == "mAP":            # accuracy-coco.py
        return f"mAP={score * 100:.3f}%"
    if task.metric == "AUC":            # accuracy-dlrm.py
        return f"AUC={score * 100:.3f}"
    if task.metric == "f1":             # accuracy-squad.py prints json.dumps of both figures
        extra = task.extra_scores(outputs) if task.extra_scores else {}
        exact = extra.get("exact_match", float("nan"))
        return json.dumps({"exact_match": exact * 100, "f1": score * 100})
    if task.metric == "WER":            # rnnt's accuracy_eval.py
        return f"Word Error Rate: {score * 100}%, accuracy={(1 - score) * 100}%"
    if task.metric == "DICE":           # 3d-unet's accuracy script
        return f"Accuracy: mean = {score:.5f}"
    raise MlpaceError(f"no official accuracy format for metric {task.metric!r}")


def score_accuracy(task: InferenceTask, folder: Path, fraction: float) -> dict:
    """Decode `mlperf_log_accuracy.json`, score it, write `accuracy.txt`; return the figures.

    accuracy.txt holds what the official accuracy script prints and the log's hash (as the
    official truncate_accuracy_log.py appends it); mlpace's own target and verdict (relative to
    the FP32 model) go to `mlpace_summary.json` only: a result file never states its verdict."""
    log_path = folder / "mlperf_log_accuracy.json"
    outputs = _decode_accuracy_log(log_path, task.output_dtype)
    missing = task.total - len(outputs)
    score = float(task.score(outputs)) if outputs else float("nan")
    target = task.target_value(fraction)
    passed = bool(outputs) and missing == 0 and task.passes(score, fraction)
    lines = [accuracy_headline(task, outputs, score),
             f"hash={hashlib.sha256(log_path.read_bytes()).hexdigest()}"]
    write_atomic(folder / "accuracy.txt", "\n".join(lines) + "\n")
    return {"metric": task.metric, "score": score, "samples": len(outputs), "target": target,
            "fraction": fraction, "reference_score": task.reference_score, "passed": passed,
            "direction": task.direction}


def run_test(task: InferenceTask, scenario: str, mode: str, options: RunOptions) -> dict:
    """Run one LoadGen test; return (and write) mlpace's summary of it."""
    benchmark = task.result_name(options.target_fraction)
    folder = run_dir(options, benchmark, scenario, mode)
    folder.mkdir(parents=True, exist_ok=True)
    context = run_context(options)
    values = user_values(task, scenario, options)
    resolved, test_settings, audit_path = _prepare_settings(task, scenario, mode, options, folder, values)
    policy = policy_for(scenario, options.max_batch or task.max_batch, options.workers,
                        server_timeout_s=options.server_wait_s)
    qsl = _sample_library(task, mode, values)
    sut = BatchingSUT(qsl, task.predict, policy)
    deadline = options.timeout_s or 2.0 * conf.expected_duration_s(resolved, mode, task.total) + 60.0
    elapsed = _run_loadgen(sut, qsl, test_settings, _log_settings(folder), audit_path, deadline,
                           f"LoadGen test {benchmark} {scenario} {mode}", folder)
    record = {
        "benchmark": benchmark, "model": task.loadgen_model, "scenario": scenario, "mode": mode,
        **context, "quick": options.quick, "shortened": options.shortened, "audit": options.audit,
        "wall_s": round(elapsed, 3), "folder": str(folder),
        "error": sut.error, "batch": policy.max_batch, "workers": policy.workers,
        "settings": resolved.values,
    }
    if mode == "performance":
        record.update(_performance_verdict(folder, sut.error, options))
    else:
        record.update(_accuracy_verdict(task, folder, sut.error, options))
    write_atomic(folder / "mlpace_summary.json", json_text(record))   # strict: a NaN score is null
    return record


def run_context(options: RunOptions) -> dict:
    """What a stored result is compared by (the store reads these from mlpace_summary.json):
    scale, division, the rules' round, and the date the run started (ISO 8601 UTC)."""
    return {"scale": options.scale, "division": options.division, "round": inference_rules.ROUND,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _prepare_settings(task: InferenceTask, scenario: str, mode: str, options: RunOptions,
                      folder: Path, values: dict):
    """Write mlperf.conf and user.conf (an audit also its audit.config); return the resolved
    settings, LoadGen's TestSettings and the audit.config path to hand LoadGen."""
    from mlpace.inference import compliance

    benchmark = task.result_name(options.target_fraction)
    user_text = conf.user_conf_text(task.loadgen_model, scenario, values)
    if not options.audit:   # an audit runs at the result's settings: its measurements stand
        measure = measurements_dir(options, benchmark, scenario)
        measure.mkdir(parents=True, exist_ok=True)
        write_atomic(measure / "mlperf.conf", conf.rules_text())
        conf.write_user_conf(measure / "user.conf", task.loadgen_model, scenario, values)
    resolved = conf.resolve(task.loadgen_model, scenario, conf.parse_conf(user_text, "user.conf"))
    test_settings = conf.to_test_settings(resolved, mode)
    audit_path = folder / "audit.config"
    if options.audit:
        write_atomic(audit_path, compliance.audit_config(options.audit, task.loadgen_model))
        compliance.apply_to_settings(options.audit, test_settings)
    else:
        # LoadGen obeys any audit.config at this path: a stale one must not turn a result into an audit.
        audit_path.unlink(missing_ok=True)
    return resolved, test_settings, audit_path


def _log_settings(folder: Path):
    import mlperf_loadgen as lg

    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(folder)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    return log_settings


def _sample_library(task: InferenceTask, mode: str, values: dict) -> SampleLibrary:
    """The QSL. A data set smaller than the performance sample count is presented several times
    over (sample i is data set entry i mod total); accuracy mode sees each entry exactly once."""
    performance_count = int(values["performance_sample_count_override"]) or task.total
    exposed = max(task.total, performance_count) if mode == "performance" else task.total
    load = task.load if exposed == task.total else (lambda index: task.load(index % task.total))
    return SampleLibrary(exposed, performance_count, load)


def _run_loadgen(sut: BatchingSUT, qsl: SampleLibrary, test_settings, log_settings, audit_path: Path,
                 deadline: float, what: str, folder: Path) -> float:
    """LoadGen's test in a thread under the watchdog (see module doc); the seconds it took.

    Past `deadline` the SUT is aborted so that LoadGen finishes and writes its logs; a failure
    of LoadGen itself becomes `sut.error`. Ctrl-C ends the test the same way, then re-raises,
    whenever it comes: before LoadGen began, the test never begins (no thread is left behind
    to start it, no watchdog left armed); after, LoadGen's logs are complete when it re-raises."""
    import mlperf_loadgen as lg

    failure: list[BaseException] = []
    done = threading.Event()            # set when StartTest has returned (or will never run)
    gate = threading.Lock()             # makes "LoadGen began" and "cancelled" exclusive
    phase = ["ready"]                   # ready -> running | cancelled

    def loadgen() -> None:
        with gate:
            if phase[0] == "cancelled":     # Ctrl-C came first: the test must not begin
                return
            phase[0] = "running"
        try:
            # A missing audit.config path: an audit.config in the user's cwd must not leak in.
            lg.StartTestWithLogSettings(sut_handle, qsl_handle, test_settings, log_settings,
                                        str(audit_path))
        except BaseException as err:  # noqa: BLE001 - reported below
            failure.append(err)
        finally:
            done.set()

    # Completion is `done`, not Thread.join: a join interrupted by Ctrl-C marks a running thread
    # as ended in CPython 3.9-3.11 (python/cpython#90882), so join() and is_alive() would lie.
    thread = threading.Thread(target=loadgen, name="mlpace-loadgen", daemon=True)
    guard = Watchdog(deadline + GRACE_S, what, armed=False)
    started = time.monotonic()
    sut_handle = None
    try:
        sut_handle = sut.start()
        qsl_handle = qsl.construct()
        guard.arm()
        thread.start()
        finished = _wait(done, deadline)
    except KeyboardInterrupt:
        with gate:
            running = phase[0] == "running"
            if not running:
                phase[0] = "cancelled"
        if running:
            sut.abort("interrupted")    # so that LoadGen completes and closes its logs
            running = not _wait(done, 60.0)
        if not running:                 # LoadGen is over (or never ran): the hard bound may go
            guard.cancel()
        if sut_handle is not None:      # (stop() cannot join workers that never started)
            sut.stop()
        raise
    if not finished:
        sut.abort(f"watchdog: no result after {deadline:.0f} s (SUT hung or far slower than "
                  "the requested rate)")
        finished = _wait(done, 60.0)
    elapsed = time.monotonic() - started
    sut.stop()
    if not finished:
        raise MlpaceError(f"LoadGen did not finish after the watchdog fired; partial logs in {folder}")
    guard.cancel()      # LoadGen came back: the hard bound is no longer needed
    sut.destroy(sut_handle)
    lg.DestroyQSL(qsl_handle)
    if failure:
        sut.error = sut.error or f"LoadGen raised {failure[0]!r}"
    return elapsed


WAIT_SLICE_S = 0.2


def _wait(event: threading.Event, seconds: float) -> bool:
    """`event.wait(seconds)` in short slices. A signal that lands just before a blocking wait
    begins does not wake it: CPython runs the Ctrl-C handler only when the wait returns, so
    one long wait would hold a Ctrl-C back until the deadline (minutes in a full run)."""
    end = time.monotonic() + seconds
    while not event.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return False
        event.wait(min(left, WAIT_SLICE_S))
    return True


def _performance_verdict(folder: Path, error: str | None, options: RunOptions) -> dict:
    """LoadGen's summary of a performance run, as the record states it."""
    from mlpace.submission.loadgen_log import parse_summary_file

    summary_path = folder / "mlperf_log_summary.txt"
    summary = parse_summary_file(summary_path) if summary_path.exists() else {}
    valid = bool(summary.get("valid")) and error is None
    return {
        "result": "ERROR" if error else summary.get("result"),
        "valid": valid,
        "valid_for_submission": valid and not options.shortened,
        "metric": summary.get("metric"), "value": summary.get("value"),
        **{key: summary.get(key) for key in ("performance_constraints_satisfied", "min_duration_satisfied",
                                             "min_queries_satisfied", "early_stopping_satisfied")},
        "latency_percentiles_ns": summary.get("latency_percentiles_ns", {}),
        "stats": summary.get("stats", {}),
    }


def _accuracy_verdict(task: InferenceTask, folder: Path, error: str | None, options: RunOptions) -> dict:
    accuracy = score_accuracy(task, folder, options.target_fraction)
    return {"accuracy": accuracy,
            "result": "ERROR" if error else ("PASS" if accuracy["passed"] else "FAIL"),
            "valid_for_submission": error is None and not options.shortened}


QUICK_SECONDS = 5.0


WARM_UP_SIZES = 16          # calibrate() runs every batch size up to this once (Server: `warm_up`)


@dataclass
class Calibration:
    single_latency_s: float      # one sample, batch of one
    batch_rate: float            # samples/s at the task's max batch


def warm_up(task: InferenceTask, largest: int) -> None:
    """Run every batch size up to `largest` once (lazy init, compilation). oneDNN builds a
    convolution for each new input shape on first use (tens of ms, and fresh memory): in a
    Server run, whose batches come in every size up to its cap, each first use made a batch
    late, and a short run's p99 counts them (16 cold sizes of ~20 samples: 2 % of 15,000)."""
    samples = [task.load(i % task.total) for i in range(min(largest, task.total))]
    for size in range(1, len(samples) + 1):
        task.predict(samples[:size])


def calibrate(task: InferenceTask, max_batch: int | None = None, repeats: int = 5) -> Calibration:
    """Time the backend briefly (untimed by LoadGen) to choose defaults a user would otherwise guess.

    The fastest of a few repeats is kept: on a shared machine the slow ones measure the
    neighbours, and an underestimate makes LoadGen's Offline query too small to last."""
    batch = min(max_batch or task.max_batch, task.total)
    samples = [task.load(i % task.total) for i in range(batch)]
    warm_up(task, min(batch, WARM_UP_SIZES))
    task.predict(samples)

    def fastest(items) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            task.predict(items)
            times.append(time.perf_counter() - start)
        return max(min(times), 1e-9)
    single = fastest(samples[:1])
    rate = batch / fastest(samples)
    return Calibration(single_latency_s=max(single, 1e-6), batch_rate=max(rate, 1e-3))


SERVER_BATCH_SHARE = 0.3    # a Server batch may take this share of the p99 latency bound


def server_max_batch(task: InferenceTask, calibration: Calibration, limit: int | None = None) -> int:
    """The largest Server batch whose service time stays well inside the latency bound.

    Offline wants the biggest batch; Server cannot use it: a batch that takes longer than the
    bound answers every sample in it late, and waiting in the queue comes on top. A batch of b
    takes about single + (b - 1) / batch_rate (between the two calibrated points)."""
    bound_s = conf.resolve(task.loadgen_model, "Server", {}).number("target_latency", 10) / 1000.0
    budget = SERVER_BATCH_SHARE * bound_s - calibration.single_latency_s
    batch = 1 + int(max(0.0, budget) * calibration.batch_rate)
    return max(1, min(limit or task.max_batch, batch))


EFFICIENT_ENOUGH = 0.97    # a batch size within 3 % of the best rate is as good as the best


def batch_rates(predict, samples: list, sizes: list[int], rounds: int = 3) -> dict[int, float]:
    """Samples/s of `predict` at each batch size: each size runs all of `samples` in batches of
    that size (so samples of different sizes, dlrm's queries, weigh alike on every size), the
    sizes take turns `rounds` times, and each keeps its fastest pass (a shared machine's slow
    moments are noise). A first use of each size, which builds kernels, is untimed."""
    fastest = {size: float("inf") for size in sizes}
    for size in sizes:
        predict(samples[:size])
    for _ in range(rounds):
        for size in sizes:
            start = time.perf_counter()
            for at in range(0, len(samples), size):
                predict(samples[at:at + size])
            fastest[size] = min(fastest[size], time.perf_counter() - start)
    return {size: len(samples) / max(seconds, 1e-9) for size, seconds in fastest.items()}


def most_efficient_batch(task: InferenceTask, largest: int, rounds: int = 3) -> int:
    """The smallest batch size up to `largest` whose samples/s is within 3 % of the best size's.

    A greedy Server worker takes everything waiting up to its cap, so after a burst it runs
    a cap-sized batch. Where a large batch costs more per sample than a small one (dlrm-mini
    on onnxruntime: a batch of 8 queries 1.3x dearer per query than single ones), each burst
    then slows the worker while more queries queue, and the batches stay large: at 1,100 QPS
    2,024 batches of 1 and 136 of 8 taking 6-16 ms, p99 36 ms. A cap at the most efficient
    size keeps bursts on the cheap path. The sizes tried are the powers of two and `largest`,
    each over the same `largest` samples (`batch_rates`)."""
    sizes = sorted({2 ** k for k in range(largest.bit_length()) if 2 ** k <= largest} | {largest})
    samples = [task.load(i % task.total) for i in range(largest)]
    rates = batch_rates(task.predict, samples, sizes, rounds)
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= EFFICIENT_ENOUGH * best)


def prepare_server(task: InferenceTask, calibration: Calibration, max_batch: int | None = None) -> int:
    """The Server batch cap, with every batch size up to it warmed up: what a Server run needs
    before LoadGen starts. `max_batch` when given; else the most efficient batch size up to
    what the latency bound allows (`server_max_batch`, `most_efficient_batch`)."""
    batch = max_batch or most_efficient_batch(task, server_max_batch(task, calibration))
    warm_up(task, batch)
    return batch


def default_user_settings(scenario: str, calibration: Calibration, quick: bool = False) -> dict:
    """What a submitter would put in user.conf after a first look at the system.

    Quick runs also get a query count worth about QUICK_SECONDS of work (8 to 64 queries), so
    that a model taking a second per sample still runs in seconds."""
    rate = calibration.batch_rate
    if scenario == "Offline":
        # Over- rather than under-estimate: LoadGen sizes the one Offline query from this,
        # and too small a query ends before min_duration (INVALID). A one-second quick run has
        # no slack for a noisy calibration, so it asks for more.
        values, per_query_s = {"target_qps": round((3.0 if quick else 1.25) * rate, 2)}, 1 / rate
    elif scenario == "Server":
        values, per_query_s = {"target_qps": round(0.5 * rate, 2)}, 2 / rate
    # Latency scenarios: LoadGen pre-generates min_duration / expected latency queries; an
    # expected latency below the real one makes enough of them (too few ends the run early).
    elif scenario == "MultiStream":
        values, per_query_s = {"target_latency": round(max(0.5 * 8 / rate, 1e-3) * 1000, 3)}, 8 / rate
    else:
        single = calibration.single_latency_s
        values, per_query_s = {"target_latency": round(max(0.5 * single, 1e-6) * 1000, 3)}, single
    if quick:
        values["min_query_count"] = int(max(8, min(64, QUICK_SECONDS / per_query_s)))
    return values
