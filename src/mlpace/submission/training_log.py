"""Defensive parser of one MLPerf Training result file (`result_<i>.txt`).

Real result files are whatever the submitter's job printed: shell tracing, progress bars and
warnings between the `:::MLLOG {json}` lines, several ranks printing the same line, lines cut
in half when a job was killed, runs that never converged. The parser keeps every MLLOG line it
can decode, counts the ones it cannot, and never raises on content (only on an unreadable
file). It reads the line the way the official `mlperf_logging` parser does: anything before
the token is dropped, the text is decoded as latin-1, and the first `run_start` / `run_stop`
are the ones that count.

Two log formats exist:
- `:::MLLOG {"time_ms": ..., "key": ..., "value": ..., "metadata": {...}}` (v0.7 and later);
- `:::MLL 1558640213.596 key: {"value": ..., "metadata": {...}}` (v0.6; seconds, not ms).

Pure Python, no torch: `mlpace summarize` and the results store import this.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import iter_lines_limited, read_text_limited  # noqa: F401 - read_text_limited: old import path

MLLOG_TOKEN = ":::MLLOG "
OLD_TOKEN = ":::MLL "          # v0.6 format
# The official `mlperf_logging` parser strips every MLLOG line with a regex whose cost grows
# with the square of the line's length (a 200 kB line costs it 10 s, per pass, and `check`
# makes three). A log whose MLLOG lines add up to more than this (sum of squared lengths) is
# refused before any checker sees it: the largest real log (NVIDIA maskrcnn, v1.0) is 1.4e8.
MAX_OFFICIAL_PARSE_COST = 4 * 10**9

# Keys that changed name across rounds, mapped to the current name (v0.6 logged the
# platform as `submission_entry` in some submissions).
KEY_ALIASES = {"submission_entry": "submission_platform"}


@dataclass
class TrainingRun:
    """What one result file says about one timed run."""

    path: str
    benchmark: str | None = None
    submitter: str | None = None          # submission_org
    division: str | None = None           # submission_division
    availability: str | None = None       # submission_status (onprem, cloud, preview, research)
    platform: str | None = None           # submission_platform
    seed: int | None = None
    status: str | None = None             # run_stop status ("success", "aborted", ...); None: no run_stop
    run_start_ms: float | None = None
    run_stop_ms: float | None = None
    init_start_ms: float | None = None    # earliest init_start before init_stop (init_window)
    init_stop_ms: float | None = None     # first init_stop
    minutes: float | None = None          # time-to-train; None unless the run converged
    global_batch_size: int | None = None
    evals: list[tuple] = field(default_factory=list)   # (epoch_num, time_ms, value)
    target: object = None                 # eval target when the log states one
    epochs: float | None = None           # epoch_num of the last eval before run_stop
    mllog_lines: int = 0
    bad_lines: int = 0                    # lines with the token that did not decode
    notes: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.minutes is not None


def _decode(line: str) -> dict | None:
    """One MLLOG record from one line, or None when the line holds none (or a broken one)."""
    pos = line.find(MLLOG_TOKEN)
    if pos >= 0:
        try:
            record = json.loads(line[pos + len(MLLOG_TOKEN):])
        except (ValueError, RecursionError):   # RecursionError: brackets nested 100,000 deep
            return {}
        if not isinstance(record, dict) or "key" not in record:
            return {}
        record["time_ms"] = finite_time(record.get("time_ms"))
        if record["time_ms"] is None:
            return {}
        if not isinstance(record.get("metadata"), dict):
            record["metadata"] = {}
        return record
    pos = line.find(OLD_TOKEN)
    if pos >= 0:
        return _decode_v06(line[pos + len(OLD_TOKEN):])
    return None


def finite_time(value) -> float | None:
    """A timestamp as a finite float, or None for what cannot be one (a 400-digit integer,
    NaN, infinity, text): such a line is counted as undecodable, never raised on."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _decode_v06(rest: str) -> dict:
    """`1558640213.596 key: {json}` -> record with time in ms."""
    try:
        stamp, tail = rest.split(" ", 1)
        key, payload = tail.split(":", 1)
        body = json.loads(payload.strip()) if payload.strip() else {}
        time_ms = finite_time(float(stamp) * 1000.0)
    except (ValueError, RecursionError):
        return {}
    if time_ms is None:
        return {}
    if isinstance(body, dict):
        value, metadata = body.get("value"), body.get("metadata") or {}
    else:
        value, metadata = body, {}
    return {"key": key.strip(), "value": value, "time_ms": time_ms,
            "metadata": metadata if isinstance(metadata, dict) else {}}


def parse_mllog_lines(text: str) -> list[dict]:
    """Every decodable MLLOG record in `text` (dicts with key, value, time_ms, metadata)."""
    records = []
    for line in text.splitlines():
        record = _decode(line)
        if record:
            records.append(record)
    return records


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):   # OverflowError: int(inf)
        return None


def init_window(records: list[dict]) -> tuple[float | None, float | None]:
    """(earliest init_start before the first init_stop, first init_stop) time_ms: what the
    compliance checker's init-time limit compares (`training_<ruleset>/common.yaml`)."""
    start = None
    for record in records:
        if record["key"] == "init_start":
            start = record["time_ms"] if start is None else min(start, record["time_ms"])
        elif record["key"] == "init_stop":
            return start, record["time_ms"]
    return start, None


def run_from_records(path: str, records: list[dict], bad_lines: int = 0) -> TrainingRun:
    """Fold decoded records into a TrainingRun (first value of each key wins, as officially)."""
    run = TrainingRun(path=str(path), mllog_lines=len(records), bad_lines=bad_lines)
    first: dict[str, dict] = {}
    for record in records:
        key = KEY_ALIASES.get(record["key"], record["key"])
        first.setdefault(key, record)
        if key == "eval_accuracy":
            epoch = record["metadata"].get("epoch_num")
            run.evals.append((epoch, record["time_ms"], record.get("value")))

    def value(key):
        return first[key].get("value") if key in first else None

    def text(key):
        found = value(key)
        return None if found is None else str(found)

    run.benchmark = text("submission_benchmark")
    run.submitter = text("submission_org")
    run.division = text("submission_division")
    run.availability = text("submission_status")
    run.platform = text("submission_platform")
    run.seed = _as_int(value("seed"))
    run.global_batch_size = _as_int(value("global_batch_size"))
    run.target = value("eval_target")
    run.init_start_ms, run.init_stop_ms = init_window(records)
    if "run_start" in first:
        run.run_start_ms = first["run_start"]["time_ms"]
    else:
        run.notes.append("no run_start")
    if "run_stop" in first:
        stop = first["run_stop"]
        run.run_stop_ms = stop["time_ms"]
        status = stop["metadata"].get("status")
        if status is None:
            # v0.6 logs have no status; their run_stop only follows a reached target.
            status = "success"
            run.notes.append("run_stop has no status (pre-v0.7 log): taken as success")
        run.status = str(status)
    else:
        run.notes.append("no run_stop: the run was cut short or the file is truncated")
    if run.status == "success" and run.run_start_ms is not None:
        # Same arithmetic as the official summarizer: (stop - start) / 60 / 1000.
        run.minutes = (run.run_stop_ms - run.run_start_ms) / 60 / 1000
    elif run.status not in (None, "success"):
        run.notes.append(f"run_stop status is {run.status!r}: the run did not converge")
    stop_ms = run.run_stop_ms if run.run_stop_ms is not None else float("inf")
    epochs = [e for e, t, _ in run.evals if e is not None and t <= stop_ms]
    if epochs:
        try:
            run.epochs = float(epochs[-1])
        except (TypeError, ValueError, OverflowError):
            run.epochs = None
    if bad_lines:
        run.notes.append(f"{bad_lines} MLLOG line(s) could not be decoded (cut or corrupt)")
    return run


def parse_result_lines(lines, path: str = "<text>") -> TrainingRun:
    """A TrainingRun from an iterable of lines (a file is streamed, never read whole)."""
    records, bad = [], 0
    for line in lines:
        record = _decode(line)
        if record is None:
            continue
        if record:
            records.append(record)
        else:
            bad += 1
    return run_from_records(path, records, bad)


def parse_result_text(text: str, path: str = "<text>") -> TrainingRun:
    return parse_result_lines(text.splitlines(), path)


def within_parse_cost(lines, path: str):
    """The lines, unless their MLLOG lines would cost the official parser more than
    MAX_OFFICIAL_PARSE_COST (then MlpaceError: the file is not a log anyone can check)."""
    cost = 0
    for line in lines:
        if ":::MLL" in line:
            cost += len(line) ** 2
            if cost > MAX_OFFICIAL_PARSE_COST:
                raise MlpaceError(f"{path} holds MLLOG lines far longer than any real log's (the "
                                  "official checkers would take minutes to parse it); refused")
        yield line


def parse_result_file(path: str | os.PathLike) -> TrainingRun:
    """Parse one result file; raises MlpaceError only when it cannot be read at all."""
    return parse_result_lines(within_parse_cost(iter_lines_limited(path), str(path)), str(Path(path)))
