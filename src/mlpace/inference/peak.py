"""Settings from measurement: the Offline rate, the latencies, and the peak Server QPS.

A full-length LoadGen run lasts at least 600 s (Server: at least 270,336 queries), so every
setting a full run depends on is measured first with short runs of a few seconds:

- Offline: one short run measures the achieved rate; the full run asks for 5 % more (LoadGen
  sizes its one query as 1.1 x 600 s x target_qps, so the run lasts about 690 s; a target
  1.7x too high made a run last 18.5 min). If the full run still ends before 600 s (the
  machine got faster), it is repeated once at 5 % over the rate it achieved.
- SingleStream / MultiStream: one short run measures the latency LoadGen reports; it becomes
  `target_latency` (LoadGen only uses it to pre-generate enough queries).
- Server: the first estimate is 0.8x the Offline rate (the share MLPerf submitters' Server
  runs reach; a Server rate cannot beat the Offline rate). One short run there decides the
  bracket: [estimate, Offline rate] if it meets the p99 bound, else up to three looks 15 %
  lower each (the peak is usually close below the estimate), and past those the far looks (1/4
  of the rate; 1/16 when even the fastest answer was late). At most four more short runs
  bisect the bracket, stopping at 3 %. The best rate, less 5 %, is then run at full length;
  LoadGen must call that run VALID. If it does not, the rate steps down 10 % and runs again,
  three full runs at most; without a VALID full run the search fails and says so (a quick or
  INVALID run is never reported as the peak). `PeakResult.report()` says how many runs of
  each kind the search took and how long.

Every run keeps its logs in its own folder, `<out>/peak-search/<benchmark>/<scenario>/NN-what/`
(each a small tree in the official layout, with its user.conf); a full-length run that was not
VALID is moved there before the next one, so the result folder holds only the final run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from mlpace.inference.runner import RunOptions, measurements_dir, run_dir, run_test
from mlpace.inference.task import InferenceTask

SEARCH_SETTINGS = {"min_duration": 2000, "min_query_count": 100}
SEARCH_SECONDS = 2.0        # a search run issues about this many seconds of queries
MEASURE_MS = 15000          # a short Offline / latency measurement (a busy machine swings over seconds)
FIRST_ESTIMATE = 0.8        # of the Offline rate: what MLPerf submitters' Server runs reach
STEP_LOWER = 0.85           # the estimate missed: look this much lower, up to LOWER_STEPS times
LOWER_STEPS = 3             # (0.68, 0.58, 0.49 of the Offline rate), then the far looks
BISECT_STEPS = 4
NARROW_ENOUGH = 0.03        # stop bisecting when the bracket is this close
MAX_HALVINGS = 3            # below start / 4**3 the SUT cannot meet the bound at any useful rate
CONFIRM_TRIES = 3
# Full runs see stalls that short ones miss. Tried on the 2-core VM: full runs straight at the
# rate a 3 s check had just met, then 5 % steps: 2 of 6 resnet50 searches found no VALID run.
CONFIRM_MARGIN = 0.95
STEP_DOWN = 0.9
# Offline asks for this much more than the measured rate: the run then lasts 1.1 x 1.05 x 600 s
# (11.5 min) at that rate, and stays over 600 s unless the SUT gets 15 % faster than measured.
OFFLINE_MARGIN = 1.05


@dataclass
class PeakResult:
    scenario: str
    best_qps: float
    trials: list[tuple[float, bool]] = field(default_factory=list)   # (qps, good) per short run
    confirmed: dict | None = None                                     # the full run's record
    error: str | None = None
    short_runs: int = 0
    full_runs: int = 0
    short_s: float = 0.0
    full_s: float = 0.0

    def report(self) -> str:
        return (f"{self.short_runs} short runs ({self.short_s:.0f} s) and {self.full_runs} "
                f"full-length run{'s' if self.full_runs != 1 else ''} ({self.full_s:.0f} s): "
                f"{(self.short_s + self.full_s) / 60:.1f} min")


def _good(record: dict) -> bool:
    return record.get("error") is None and bool(record.get("performance_constraints_satisfied"))


def _accepted(record: dict, options: RunOptions) -> bool:
    """A full run counts only when LoadGen calls it VALID (quick runs: when the bound held)."""
    return bool(record.get("valid")) if not options.quick else _good(record)


class _Trials:
    """Numbered folders for the short runs and set-aside full runs of one search."""

    def __init__(self, task: InferenceTask, scenario: str, options: RunOptions):
        self.task, self.scenario, self.options = task, scenario, options
        self.root = (options.out / "peak-search" / task.result_name(options.target_fraction)
                     / scenario)
        # Numbering goes on from an earlier search's folders: those logs are kept too.
        self.count = len(list(self.root.iterdir())) if self.root.is_dir() else 0

    def next_out(self, label: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:02d}-{label}"

    def short(self, settings: dict, label: str, scenario: str | None = None) -> dict:
        """A short run with `settings`, in its own folder."""
        search = replace(self.options, quick=True, out=self.next_out(label), user_settings=settings,
                         test_minimums=None)
        return run_test(self.task, scenario or self.scenario, "performance", search)

    def set_aside(self, record: dict, label: str) -> None:
        """Move a full run that did not count (and its user.conf) out of the result folder."""
        benchmark = self.task.result_name(self.options.target_fraction)
        out = self.next_out(label)
        kept = run_dir(replace(self.options, out=out), benchmark, self.scenario, "performance")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(record["folder"], kept)
        user_conf = measurements_dir(self.options, benchmark, self.scenario) / "user.conf"
        if user_conf.exists():
            measure = measurements_dir(replace(self.options, out=out), benchmark, self.scenario)
            measure.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(user_conf, measure / "user.conf")
        record["folder"] = str(kept)


def _short_settings(options: RunOptions, **extra) -> dict:
    """User settings of a short measurement: the user's, a few seconds, few queries."""
    settings = {**(options.user_settings or {}), **SEARCH_SETTINGS, "min_duration": MEASURE_MS}
    if options.test_minimums:                 # tests: as short as the shortened full runs
        settings["min_duration"] = min(MEASURE_MS, int(options.test_minimums.get("min_duration", MEASURE_MS)))
    settings.update(extra)
    return settings


def measure_offline(task: InferenceTask, options: RunOptions, start_qps: float,
                    log: Callable[[str], None] = lambda _: None, trials: _Trials | None = None) -> float:
    """The Offline rate LoadGen measures through the SUT in a short run (samples/s)."""
    trials = trials or _Trials(task, "Offline", options)
    # Over-asking only lengthens this short run; under-asking would end it too soon.
    record = trials.short(_short_settings(options, target_qps=round(2.0 * start_qps, 3),
                                          min_query_count=1), "offline-rate", "Offline")
    rate = float(record.get("value") or 0.0)
    log(f"  short Offline run: {rate:.1f} samples/s")
    return rate if rate > 0 else start_qps


def measure_latency_ms(task: InferenceTask, scenario: str, options: RunOptions, guess_ms: float,
                       log: Callable[[str], None] = lambda _: None) -> float:
    """The latency (ms) LoadGen reports for SingleStream (p90) or MultiStream (p99) in a short run."""
    trials = _Trials(task, scenario, options)
    settings = _short_settings(options, target_latency=round(max(guess_ms * 0.5, 1e-3), 3),
                               min_query_count=16)
    record = trials.short(settings, "latency")
    value = record.get("value")
    latency_ms = float(value) / 1e6 if isinstance(value, (int, float)) and value > 0 else guess_ms
    log(f"  short {scenario} run: {latency_ms:.2f} ms")
    return latency_ms


def confirm_offline(task: InferenceTask, options: RunOptions, rate: float,
                    log: Callable[[str], None] = lambda _: None,
                    trials: _Trials | None = None, result: PeakResult | None = None) -> dict:
    """The full-length Offline run at (a little over) the measured rate; once more if it
    ended too soon."""
    trials = trials or _Trials(task, "Offline", options)
    record: dict = {}
    rate *= OFFLINE_MARGIN
    for attempt in range(2):
        settings = {**(options.user_settings or {}), "target_qps": round(rate, 3)}
        started = time.monotonic()
        record = run_test(task, "Offline", "performance", replace(options, user_settings=settings))
        if result is not None:
            result.full_runs += 1
            result.full_s += time.monotonic() - started
        log(f"  Offline at {rate:.1f} samples/s expected: {record.get('result')} "
            f"({record.get('value')} samples/s)")
        achieved = float(record.get("value") or 0.0)
        too_short = record.get("min_duration_satisfied") is False or (
            not record.get("valid") and achieved > 1.1 * rate)
        if record.get("valid") or not too_short or attempt or achieved <= 0 or record.get("error"):
            break
        trials.set_aside(record, f"offline-too-short-{rate:.0f}qps")
        rate = achieved * OFFLINE_MARGIN
    return record


def find_peak_offline(task: InferenceTask, options: RunOptions, start_qps: float,
                      log: Callable[[str], None] = lambda _: None) -> PeakResult:
    """Measure the Offline rate with a short run, then run at full length with it."""
    trials = _Trials(task, "Offline", options)
    started = time.monotonic()
    measured = measure_offline(task, options, start_qps, log, trials)
    result = PeakResult("Offline", measured, [(measured, True)], short_runs=1,
                        short_s=time.monotonic() - started)
    result.confirmed = confirm_offline(task, options, measured, log, trials, result)
    result.best_qps = float(result.confirmed.get("settings", {}).get("target_qps", measured))
    if not _accepted(result.confirmed, options):
        result.error = f"the full-length Offline run was {result.confirmed.get('result')}"
    return result


def find_peak_server(task: InferenceTask, options: RunOptions, start_qps: float,
                     log: Callable[[str], None] = lambda _: None,
                     ceiling: float | None = None) -> PeakResult:
    """Search the Server target QPS with short runs, then confirm it at full length.

    `ceiling`: the Offline rate, when known; the first estimate is FIRST_ESTIMATE x it, and
    no rate above it is tried (a Server rate cannot beat the Offline rate)."""
    search = _ServerSearch(task, options, log)
    # The first estimate: a share of the Offline rate that submitters' systems reach.
    start = FIRST_ESTIMATE * ceiling if ceiling else max(start_qps, 0.1)
    low, high = search.bracket(start, ceiling)
    if low == 0.0:
        low, high = search.look_lower(high, start)
    if low == 0.0:
        return search.give_up()
    return search.confirm(search.narrow(low, high))


class _ServerSearch:
    """The steps of one Server peak search; every run lands in its own numbered folder."""

    def __init__(self, task: InferenceTask, options: RunOptions, log: Callable[[str], None]):
        self.task, self.options, self.log = task, options, log
        self.trials = _Trials(task, "Server", options)
        self.result = PeakResult("Server", 0.0)
        self.started = time.monotonic()
        self.late: tuple[float, float] | None = None   # (qps, fastest answer ns) of a run whose
        #                                                 fastest answer was already over the bound

    def trial(self, qps: float) -> bool:
        """A short run at `qps`: does it meet the p99 latency bound?"""
        # A few seconds of queries at this rate, however low the rate.
        queries = int(max(10, min(SEARCH_SETTINGS["min_query_count"], qps * SEARCH_SECONDS)))
        settings = {**(self.options.user_settings or {}), **SEARCH_SETTINGS,
                    "min_query_count": queries, "target_qps": round(qps, 3)}
        record = self.trials.short(settings, f"server-{qps:.1f}qps")
        good = _good(record)
        self.result.trials.append((qps, good))
        self.log(f"  Server at {qps:.1f} QPS: {'meets' if good else 'misses'} the latency bound")
        fastest_ns = record.get("stats", {}).get("Min latency (ns)")
        bound_ns = float(record["settings"].get("target_latency", 0)) * 1e6
        late = not good and isinstance(fastest_ns, (int, float)) and bound_ns and fastest_ns > bound_ns
        self.late = (qps, fastest_ns) if late else None
        return good

    def bracket(self, start: float, ceiling: float | None) -> tuple[float, float | None]:
        """(a rate that met the bound or 0, a rate that missed it or None): from `start`, up to
        the ceiling when there is one, else doubling until the bound is missed."""
        if ceiling:
            if self.trial(start):
                return start, ceiling
            return self.step_lower(start)
        low, qps = 0.0, start
        for _ in range(8):                   # grow until the bound is missed
            if not self.trial(qps):
                return low, qps
            low, qps = qps, qps * 2.0
        return low, None

    def step_lower(self, high: float) -> tuple[float, float]:
        """(a rate that met the bound or 0, the lowest that missed): a few looks a step below
        a rate that missed, where a Server peak near the estimate is found; none when even the
        fastest answer was late (the run queued everything: a step lower tells nothing)."""
        for _ in range(LOWER_STEPS):
            if self.late:
                break
            qps = high * STEP_LOWER
            if self.trial(qps):
                return qps, high
            high = qps
        return 0.0, high

    def look_lower(self, high: float, start: float) -> tuple[float, float]:
        """Shrink the rate until a short run meets the bound (a few times at most); `start`:
        the first rate tried."""
        qps = high
        for _ in range(MAX_HALVINGS):
            if self.late and self.late[0] == qps:     # even the fastest answer was late:
                if qps <= start / 8:
                    break                              # at a low rate too, so no rate can help
                qps = start / 16      # or that run queued everything from its first query: look far lower
            else:
                qps = high / 4.0
            if self.trial(qps):
                return qps, high
            high = qps
        return 0.0, high

    def narrow(self, low: float, high: float | None) -> float:
        """Bisect between a rate that met the bound and one that missed it (or the ceiling)."""
        high = high if high is not None else low * 2.0
        for _ in range(BISECT_STEPS):
            if high - low <= NARROW_ENOUGH * low:
                break
            # Halve the ratio while the bracket is wide (after a jump to 1/16), then the difference.
            middle = (low * high) ** 0.5 if high > 2 * low else (low + high) / 2
            if self.trial(middle):
                low = middle
            else:
                high = middle
        self._count_short_runs()
        return low

    def give_up(self) -> PeakResult:
        result = self.result
        if self.late:
            why = f"its fastest answer took {self.late[1] / 1e6:.1f} ms, even at {self.late[0]:.2f} QPS"
        else:
            why = f"no rate down to {result.trials[-1][0]:.2f} QPS met it"
        self._count_short_runs()
        result.error = f"the SUT cannot meet the Server latency bound: {why}"
        return result

    def confirm(self, rate: float) -> PeakResult:
        """Full-length runs from a little under the searched rate, stepping down until LoadGen
        calls one VALID; the runs that were not are set aside with their logs."""
        options, result = self.options, self.result
        rate *= CONFIRM_MARGIN if not options.quick else 1.0
        for attempt in range(CONFIRM_TRIES):
            settings = {**(options.user_settings or {}), "target_qps": round(rate, 3)}
            run_started = time.monotonic()
            record = run_test(self.task, "Server", "performance", replace(options, user_settings=settings))
            result.full_runs += 1
            result.full_s += time.monotonic() - run_started
            result.confirmed, result.best_qps = record, rate
            self.log(f"  {'quick' if options.quick else 'full-length'} run at {rate:.1f} QPS: "
                     f"{record.get('result')}")
            if _accepted(record, options):
                return result
            if attempt + 1 < CONFIRM_TRIES:
                self.trials.set_aside(record, f"server-invalid-{rate:.1f}qps")
                rate *= STEP_DOWN
        result.error = (f"no Server rate down to {rate:.1f} QPS was VALID at full length "
                        f"({CONFIRM_TRIES} runs)")
        return result

    def _count_short_runs(self) -> None:
        self.result.short_runs = len(self.result.trials)
        self.result.short_s = time.monotonic() - self.started
