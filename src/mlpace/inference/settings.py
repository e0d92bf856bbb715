"""LoadGen test settings from the official `mlperf.conf` rules plus a generated `user.conf`.

mlpace reads both files itself instead of calling `TestSettings.FromConfig`, which has three
traps: it keeps a static counter, so a second call in the same process (peak search, `--all`)
silently skips the mlperf.conf rules and logs an error; its parser keeps text after a value
(`12 # comment`) and is picky about spacing; and the wheel's built-in rules are those of the
newest round, not v1.1. Here the lookup order is LoadGen's own (`model.scenario.key`, then
`*.scenario.key`, `model.*.key`, `*.*.key`), user.conf overrides mlperf.conf, and unknown keys
are errors.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.rules import inference as rules

SCENARIOS = list(rules.SCENARIOS)
MODES = ["performance", "accuracy"]

# Keys a v1.1 mlperf.conf holds that today's LoadGen no longer has a setting for.
IGNORED_KEYS = {"target_duration"}

# Keys a user.conf may set (the MLPerf rules let a submitter choose these, nothing else).
USER_KEYS = {"target_qps", "target_latency", "performance_sample_count_override",
             "max_async_queries", "min_duration", "min_query_count", "max_duration",
             "max_query_count", "coalesce_queries"}

# Quick runs: seconds, not minutes; the result is marked not valid for submission.
QUICK_OVERRIDES = {"min_duration": 1000, "min_query_count": 64}
QUICK_MULTISTREAM_QUERIES = 16


# What each LoadGen setting may be, in conf-file units: (smallest, largest, what it is).
# Reasons for the bounds: LoadGen aborts in C++ (or segfaults) on zero or negative rates and
# latencies, and sizes its schedule from them, so a huge rate is a huge allocation (`validate`
# also checks that allocation against the memory available).
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
LIMITS = {
    "target_qps": (0.0, 1e7, "queries per second"),                 # > 0
    "target_latency": (0.0, _HOUR_MS, "milliseconds"),               # > 0
    "target_latency_percentile": (0.0, 100.0, "percent"),            # > 0
    "min_duration": (0, _DAY_MS, "milliseconds"),
    "max_duration": (0, 7 * _DAY_MS, "milliseconds (0: no limit)"),
    "min_query_count": (1, 10**9, "queries"),
    "max_query_count": (0, 10**9, "queries (0: no limit)"),
    "performance_sample_count_override": (0, 10**8, "samples (0: the model's own)"),
    "samples_per_query": (1, 10**6, "samples"),
    "max_async_queries": (0, 10**6, "queries (0: no limit)"),
    "accuracy_log_probability": (0.0, 1.0, "a probability"),
}
_STRICTLY_POSITIVE = {"target_qps", "target_latency", "target_latency_percentile"}

# Memory a performance run takes per scheduled sample, LoadGen and mlpace's SUT together:
# measured (peak RSS slope, LoadGen 6, a SUT answering at once) at 340 B for Offline (one query
# of 1 M and 3 M samples) and 385 B for Server (0.5 M and 1.5 M samples); tests/inference
# keeps the measurement honest. The estimate rounds up.
SCHEDULE_BYTES_PER_SAMPLE = 400
# The schedule may take this share of the memory available when the test starts (the model
# and the data are loaded by then, so the available memory already counts them out).
SCHEDULE_MEMORY_SHARE = 0.8


def available_memory_bytes() -> int:
    """Memory this process may still take: MemAvailable, else all physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def schedule_bytes(resolved: "ResolvedSettings") -> float:
    """The memory a performance run of these settings needs for its schedule."""
    return scheduled_samples(resolved) * SCHEDULE_BYTES_PER_SAMPLE


def check_value(key: str, value, where: str = "") -> float:
    """`value` of LoadGen setting `key` as a number if it is one LoadGen can take; otherwise
    MlpaceError in one line saying what the setting must be."""
    name = f"{where}{key}"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MlpaceError(f"LoadGen setting {name} = {value!r} is not a number") from None
    if key not in LIMITS:
        return number
    low, high, unit = LIMITS[key]
    if not math.isfinite(number):
        raise MlpaceError(f"LoadGen setting {name} = {value!r} must be a finite number of {unit}")
    if isinstance(low, int) and not number.is_integer():
        raise MlpaceError(f"LoadGen setting {name} = {value!r} must be a whole number of {unit}")
    too_low = number <= low if key in _STRICTLY_POSITIVE else number < low
    if too_low or number > high:
        bound = f"above {low:g}" if key in _STRICTLY_POSITIVE else f"at least {low:g}"
        raise MlpaceError(f"LoadGen setting {name} = {value!r} must be {bound} and at most "
                          f"{high:g} {unit}")
    return number


def scheduled_samples(resolved: "ResolvedSettings") -> float:
    """How many samples LoadGen will schedule for a performance run of these settings (its
    own arithmetic: a rate or latency times min_duration, at least min_query_count)."""
    min_s = resolved.number("min_duration") / 1000.0
    queries = resolved.number("min_query_count", 1)
    scenario = resolved.scenario
    if scenario == "Offline":
        samples = max(queries, resolved.number("target_qps", 1.0) * min_s * 1.1)
    elif scenario == "Server":
        samples = max(queries, resolved.number("target_qps", 1.0) * min_s)
    else:
        latency_s = resolved.number("target_latency", 10) / 1000.0
        samples = max(queries, min_s / latency_s)
        if scenario == "MultiStream":
            samples *= resolved.number("samples_per_query", 8)
    cap = resolved.number("max_query_count", 0)
    if cap > 0 and scenario != "Offline":
        samples = min(samples, cap * (resolved.number("samples_per_query", 8)
                                      if scenario == "MultiStream" else 1))
    return samples


def validate(resolved: "ResolvedSettings") -> None:
    """Every setting within LIMITS, and a schedule that fits in memory: one clear line, not a
    C++ abort, a segfault or a machine swapping for minutes."""
    where = f"{resolved.model}.{resolved.scenario}."
    for key, value in resolved.values.items():
        check_value(key, value, where)
    samples = scheduled_samples(resolved)
    allowed = SCHEDULE_MEMORY_SHARE * available_memory_bytes()
    if schedule_bytes(resolved) > allowed:
        raise MlpaceError(
            f"these LoadGen settings schedule {samples:.3g} samples ({where}target_qps or "
            f"target_latency with min_duration {resolved.number('min_duration'):g} ms), about "
            f"{schedule_bytes(resolved) / 2**30:.1f} GiB; this machine's memory allows at most "
            f"{allowed / SCHEDULE_BYTES_PER_SAMPLE:.3g} now ({allowed / 2**30:.1f} GiB): lower the "
            "rate or the duration, or free memory")


def rules_text() -> str:
    """The v1.1 mlperf.conf, generated from the rules (`mlpace.rules.inference`)."""
    return rules.mlperf_conf_text()


def parse_conf(text: str, source: str = "config") -> dict[str, str]:
    """`model.scenario.key = value` lines into a dict; `#` starts a comment anywhere."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value or name.count(".") != 2 or " " in name:
            raise MlpaceError(f"{source}:{lineno}: expected 'model.scenario.key = value', got {raw.strip()!r}")
        values[name] = value
    return values


def lookup(conf: dict[str, str], model: str, scenario: str, key: str) -> str | None:
    """LoadGen's lookup order: exact, then model wildcard, then scenario wildcard, then both."""
    for candidate in (f"{model}.{scenario}.{key}", f"*.{scenario}.{key}",
                      f"{model}.*.{key}", f"*.*.{key}"):
        if candidate in conf:
            return conf[candidate]
    return None


def _keys_for(conf: dict[str, str], model: str, scenario: str) -> set[str]:
    return {name.split(".")[2] for name in conf
            if name.split(".")[0] in ("*", model) and name.split(".")[1] in ("*", scenario)}


@dataclass
class ResolvedSettings:
    """The effective key/values for one model and scenario, in conf-file units (ms, percent)."""
    model: str
    scenario: str
    values: dict[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float = 0.0) -> float:
        return float(self.values.get(key, default))


def resolve(model: str, scenario: str, user_conf: dict[str, str],
            rules: dict[str, str] | None = None) -> ResolvedSettings:
    """mlperf.conf rules, then user.conf on top, for one model and scenario."""
    if scenario not in SCENARIOS:
        raise MlpaceError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    rules = rules if rules is not None else parse_conf(rules_text(), "mlperf.conf")
    resolved = ResolvedSettings(model, scenario)
    for conf in (rules, user_conf):
        for key in sorted(_keys_for(conf, model, scenario)):
            resolved.values[key] = lookup(conf, model, scenario, key)
    return resolved


def user_conf_text(model: str, scenario: str, values: dict[str, object]) -> str:
    """A user.conf for one model/scenario (what LoadGen users write by hand)."""
    unknown = sorted(set(values) - USER_KEYS)
    if unknown:
        raise MlpaceError(f"user.conf may not set {', '.join(unknown)}")
    for key, value in values.items():
        check_value(key, value, f"{model}.{scenario}.")
    lines = ["# Generated by mlpace: the settings a submitter chooses for this run."]
    lines += [f"{model}.{scenario}.{key} = {value}" for key, value in sorted(values.items())]
    return "\n".join(lines) + "\n"


def write_user_conf(path: Path, model: str, scenario: str, values: dict[str, object]) -> Path:
    """Write user.conf atomically (temp file + rename)."""
    from mlpace.io import write_atomic
    return write_atomic(path, user_conf_text(model, scenario, values))


def to_test_settings(resolved: ResolvedSettings, mode: str):
    """A `mlperf_loadgen.TestSettings` carrying the resolved values."""
    import mlperf_loadgen as lg

    if mode not in MODES:
        raise MlpaceError(f"unknown mode {mode!r}; choose performance or accuracy")
    validate(resolved)
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, resolved.scenario)
    settings.mode = lg.TestMode.PerformanceOnly if mode == "performance" else lg.TestMode.AccuracyOnly
    scenario = resolved.scenario
    percentile_attr = {"SingleStream": "single_stream_target_latency_percentile",
                       "MultiStream": "multi_stream_target_latency_percentile",
                       "Server": "server_target_latency_percentile"}
    latency_attr = {"SingleStream": "single_stream_expected_latency_ns",
                    "MultiStream": "multi_stream_expected_latency_ns",
                    "Server": "server_target_latency_ns"}
    for key, value in resolved.values.items():
        if key in IGNORED_KEYS:
            continue
        try:
            if key in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed",
                       "accuracy_log_rng_seed", "min_query_count", "max_query_count",
                       "performance_sample_count_override", "performance_issue_same_index"):
                setattr(settings, key, int(value))
            elif key in ("min_duration", "max_duration"):
                setattr(settings, f"{key}_ms", int(float(value)))
            elif key == "target_latency_percentile":
                if scenario in percentile_attr:
                    setattr(settings, percentile_attr[scenario], float(value) / 100.0)
            elif key == "target_latency":
                if scenario in latency_attr:
                    setattr(settings, latency_attr[scenario], int(float(value) * 1_000_000))
            elif key == "target_qps":
                if scenario == "Server":
                    settings.server_target_qps = float(value)
                elif scenario == "Offline":
                    settings.offline_expected_qps = float(value)
            elif key == "samples_per_query":
                settings.multi_stream_samples_per_query = int(value)
            elif key == "max_async_queries":
                settings.server_max_async_queries = int(value)
            elif key == "coalesce_queries":
                settings.server_coalesce_queries = bool(int(value))
            elif key in ("sample_concatenate_permutation", "print_timestamps",
                         "performance_issue_unique", "performance_issue_same"):
                setattr(settings, key, bool(int(value)))
            elif key == "accuracy_log_probability":
                settings.accuracy_log_probability = float(value)
            else:
                raise MlpaceError(f"unknown LoadGen setting {key!r} for {resolved.model}.{scenario}")
        except ValueError:
            raise MlpaceError(f"LoadGen setting {resolved.model}.{scenario}.{key} = {value!r} "
                              "is not a number") from None
    return settings


def expected_duration_s(resolved: ResolvedSettings, mode: str, total_samples: int) -> float:
    """How long LoadGen should need, at the user's stated rate: the basis of the watchdog."""
    min_s = resolved.number("min_duration") / 1000.0
    queries = resolved.number("min_query_count", 1)
    scenario = resolved.scenario
    if mode == "accuracy":
        rate = resolved.number("target_qps", 1.0) if scenario in ("Server", "Offline") else 0.0
        per_sample_s = 1.0 / rate if rate > 0 else resolved.number("target_latency", 10) / 1000.0
        return total_samples * per_sample_s
    if scenario == "Server":
        return max(min_s, queries / max(resolved.number("target_qps", 1.0), 1e-9))
    if scenario == "Offline":
        samples = max(queries, resolved.number("target_qps", 1.0) * min_s * 1.1)
        return samples / max(resolved.number("target_qps", 1.0), 1e-9)
    latency_s = resolved.number("target_latency", 10) / 1000.0
    return max(min_s, queries * latency_s)
