"""Defensive parser of one MLPerf Training result file (`result_<i>.txt`).

Real result files are whatever the submitter's job printed: shell tracing, progress bars and
warnings between the `:::MLLOG {json}` lines, several ranks printing the same line, lines cut
in half when a job was killed, runs that never converged. The parser keeps every MLLOG line it
can decode, counts the ones it cannot, and never raises on content (only on an unreadable
file, or one whose MLLOG lines would cost the official parser minutes: MAX_OFFICIAL_PARSE_COST). It reads the line the way the official `mlperf_logging` parser does: the text is
decoded as latin-1 and cut into lines as a Python text file is (at \n, \r\n and \r), anything
before the token is dropped, and the first `run_start` / `run_stop` are the ones that count.

Two log formats exist:
- `:::MLLOG {"time_ms": ..., "key": ..., "value": ..., "metadata": {...}}` (v0.7 and later);
- `:::MLL 1558640213.596 key: {"value": ..., "metadata": {...}}` (v0.6; seconds, not ms).

Two readers give the same TrainingRun:
- `parse_result_text` decodes every MLLOG line: the plain definition, kept for text in hand;
- `parse_result_file` is the one for files, built for whole published rounds (thousands of
  logs, hundreds of MB): it reads the file once as bytes (in one piece up to WHOLE_BYTES,
  else in chunks of CHUNK_BYTES), counts the MLLOG lines, finds the few lines a TrainingRun is made of (`RUN_KEYS`) by a byte search for their
  `"key"`, and decodes only those (plus the file's last MLLOG line, which a killed job cuts).
  The thousands of per-step lines are counted, never decoded: a corrupt one in the middle of
  a log is not noticed (it changes nothing a TrainingRun holds), and a line carrying two
  MLLOG tokens counts as two. Those counts are the only difference from the plain reader,
  and only on corrupt logs (tests/submission/test_training_log_fast.py holds the two equal
  on every published fixture log). Chunks without the MLLOG token but with the v0.6 token
  are decoded line by line, as by the plain reader.
- `parse_result_file(..., all_evals=False)`, the scoring reader of `mlpace summarize`, also
  leaves out the evaluation lines (three in four of the lines the fast reader decodes) and the
  line count: of the evaluations it decodes the file's last one, found by a backward byte
  search. A run that reached its target did so at its last evaluation; summarize reads every
  evaluation of a run whose last one does not pass (`summarize._closed_target_reached`).

Pure Python, no torch: `mlpace summarize` and the results store import this.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import MAX_FILE_BYTES, open_limited

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
# Every key `run_from_records` reads: the fast reader decodes only lines logging one of these,
# so a new TrainingRun field read from another key must add that key here.
RUN_KEYS = ("run_start", "run_stop", "init_start", "init_stop", "seed", "global_batch_size",
            "eval_target", "eval_accuracy", "submission_benchmark", "submission_org",
            "submission_division", "submission_status", "submission_platform",
            *KEY_ALIASES)
# A log up to this size is read in one piece (nearly all: real ones are at most a few MB);
# a larger one in chunks of CHUNK_BYTES, which bounds memory (a line longer than a chunk is
# still read whole, up to the file size limit).
WHOLE_BYTES = 4 * 2**20
CHUNK_BYTES = 2**20
_SCAN_JSON = json.JSONDecoder().scan_once       # the C scanner json.loads ends up in
_JSON_SPACE = re.compile(r"[ \t\n\r]*")           # what json.loads skips around a value
_TOKEN = MLLOG_TOKEN.encode()
_OLD_TOKEN = OLD_TOKEN.encode()
EVAL_KEY = "eval_accuracy"


def _key_pattern(keys) -> re.Pattern:
    """`"key": "run_start"` (for any of `keys`) as json.dumps writes it (any spaces or tabs
    around the colon)."""
    return re.compile(rb'"key"[ \t]*:[ \t]*"(?:' + b"|".join(re.escape(k.encode()) for k in keys)
                      + rb')"')


_RUN_KEY = _key_pattern(RUN_KEYS)
# The scoring reader (`all_evals=False`) leaves out the one key logged dozens of times a run:
# 3 in 4 of the lines a TrainingRun is made of are evaluations.
_SCORE_KEY = _key_pattern(k for k in RUN_KEYS if k != EVAL_KEY)
_EVAL_KEY = _key_pattern([EVAL_KEY])
_EVAL_NAME = f'"{EVAL_KEY}"'.encode()


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
    mllog_lines: int | None = 0           # None: some, not counted (the scoring reader)
    bad_lines: int = 0                    # lines with the token that did not decode
    all_evals: bool = True                # False: evals (and epochs) from the last one only
    notes: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.minutes is not None


def _json_from(text: str, pos: int):
    """`json.loads(text[pos:])`: the same value and the same failures (ValueError), minus the
    copy and the layers of calls (this runs once per decoded line)."""
    if text[pos:pos + 1] != "{":              # the usual case needs no whitespace skipping
        pos = _JSON_SPACE.match(text, pos).end()
    try:
        value, end = _SCAN_JSON(text, pos)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if end != len(text) and _JSON_SPACE.match(text, end).end() != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def _record(record) -> dict:
    """A decoded MLLOG JSON value as a record ({} when it is not one: no key, no time)."""
    if not isinstance(record, dict) or "key" not in record:
        return {}
    record["time_ms"] = finite_time(record.get("time_ms"))
    if record["time_ms"] is None:
        return {}
    if not isinstance(record.get("metadata"), dict):
        record["metadata"] = {}
    return record


def _decode(line: str) -> dict | None:
    """One MLLOG record from one line, or None when the line holds none (or a broken one)."""
    pos = line.find(MLLOG_TOKEN)
    if pos >= 0:
        try:
            record = _json_from(line, pos + len(MLLOG_TOKEN))
        except (ValueError, RecursionError):   # RecursionError: absurdly nested JSON
            return {}
        return _record(record)
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


def run_from_records(path: str, records: list[dict], bad_lines: int = 0,
                     mllog_lines: int | None = None) -> TrainingRun:
    """Fold decoded records into a TrainingRun (first value of each key wins, as officially).

    Reads only the keys in RUN_KEYS. `mllog_lines` defaults to the number of records."""
    run = TrainingRun(path=str(path), bad_lines=bad_lines,
                      mllog_lines=len(records) if mllog_lines is None else mllog_lines)
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


def universal_lines(text: str) -> list[str]:
    """`text` cut into lines as a Python text file reads them (at \\n, \\r\\n and \\r: the
    official parser's `open(..., encoding="latin-1")`), not at the other breaks
    `str.splitlines` knows (\\x85, \\x0c, ...), which are plain bytes in a log."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _decode_lines(text: str) -> tuple[list[dict], int]:
    """(records, lines that carry a token but did not decode) of every line in `text`."""
    records, bad = [], 0
    for line in universal_lines(text):
        record = _decode(line)
        if record is None:
            continue
        if record:
            records.append(record)
        else:
            bad += 1
    return records, bad


def parse_result_text(text: str, path: str = "<text>") -> TrainingRun:
    """The plain reader: decode every line (see the module doc)."""
    records, bad = _decode_lines(text)
    return run_from_records(path, records, bad)


def _decode_whole_lines(text: str) -> tuple[list[dict], int] | None:
    """`_decode_lines(text)` in one JSON parse when every line with a token holds one whole
    `{...}` record, else None (then the lines are decoded one by one). One parse of the
    lines as a JSON array saves the per-call cost of decoding a hundred thousand lines, and
    cannot take a cut line for a whole one: a record cut short leaves a bracket open, so the
    array fails to parse or holds fewer items than lines. (Only lines built to fit each other
    - one missing exactly what another has too much - could pass for whole ones together.)"""
    payloads = []
    for line in universal_lines(text):
        pos = line.find(MLLOG_TOKEN)
        if pos < 0:
            if OLD_TOKEN in line:
                return None
            continue
        payload = line[pos + len(MLLOG_TOKEN):].strip(" \t")
        if payload[:1] != "{" or payload[-1:] != "}":
            return None
        payloads.append(payload)
    try:
        values = json.loads("[" + ",".join(payloads) + "]")
    except (ValueError, RecursionError):
        return None
    if len(values) != len(payloads):
        return None
    records = [_record(value) for value in values]
    return None if not all(records) else (records, 0)


def official_parse_cost(text: str) -> int:
    """What the MLLOG lines of `text` cost the official parser: the sum of their squared lengths."""
    return sum(len(line) ** 2 for line in universal_lines(text) if ":::MLL" in line)


def _parse_cost(data: bytes) -> int:
    """`official_parse_cost` of latin-1 `data`, from the lines holding the token alone (cut at
    \\n, \\r\\n and \\r, as the text), with nothing decoded or copied."""
    cost, pos, find, rfind = 0, 0, data.find, data.rfind
    carriage = b"\r" in data
    while (at := find(b":::MLL", pos)) >= 0:
        start = rfind(b"\n", pos, at) + 1
        end = find(b"\n", at)
        if end < 0:
            end = len(data)
        if carriage:
            start = max(start, rfind(b"\r", start, at) + 1)
            cut = find(b"\r", at, end)
            end = end if cut < 0 else cut
        cost += (end - start) ** 2
        pos = end
    return cost


class _ParseCost:
    """Refuses a file whose `official_parse_cost` is over the limit. A file read in one piece
    (nearly every log) is first bounded from above with a few byte searches: cut into
    windows of `width` bytes, a window without a newline lies inside a long line, which is
    measured exactly, and every other line is shorter than three windows, so together they
    cost less than 3 * width * their bytes - `width` keeps that under the limit (a 4 MB log
    takes 12,000 searches, 3 ms). Only when the bound is over the limit, or the file comes in
    chunks (the bound of a chunk already gone could not be made exact later), are the MLLOG
    lines measured one by one."""

    def __init__(self, size: int, path, whole: bool):
        self.width = max(1, MAX_OFFICIAL_PARSE_COST // (3 * max(size, 1)))
        self.cost, self.path, self.whole = 0, path, whole

    def _bound(self, data: bytes) -> int:
        width, find = self.width, data.find
        long_cost = long_bytes = pos = 0
        while pos + width <= len(data):
            if find(b"\n", pos, pos + width) >= 0:
                pos += width
                continue
            start, end = data.rfind(b"\n", 0, pos) + 1, _line_end(data, pos)
            long_cost += _parse_cost(data[start:end])
            long_bytes += end - start
            pos = end + 1
        return long_cost + 3 * width * (len(data) - long_bytes)

    def add(self, data: bytes) -> None:
        if self.whole and self._bound(data) <= MAX_OFFICIAL_PARSE_COST:
            return
        self.cost += _parse_cost(data)
        if self.cost > MAX_OFFICIAL_PARSE_COST:
            raise MlpaceError(f"{self.path} holds MLLOG lines far longer than any real log's (the "
                              "official checkers would take minutes to parse it); refused")


class _Scan:
    """The fast reader's state across the chunks of one file. `all_evals=False` makes it the
    scoring reader: lines are not counted, and of the evaluations only the last one is
    decoded (see parse_result_file)."""

    def __init__(self, size: int, path, whole: bool, all_evals: bool = True):
        self.records: list[dict] = []
        self.bad = 0
        self.lines = 0              # MLLOG lines that decoded (or were taken as decoding)
        self.uncounted = False      # the scoring reader saw MLLOG lines it did not count
        self.last_line = b""        # the last MLLOG line so far, unless already decoded
        self.last_eval: list[dict] = []     # the scoring reader's last evaluation so far
        self.all_evals = all_evals
        self.keys = _RUN_KEY if all_evals else _SCORE_KEY
        self.parse_cost = _ParseCost(size, path, whole)

    def chunk(self, data: bytes) -> None:
        """Take in `data`, whole lines (it ends at a newline or at the end of the file)."""
        self.parse_cost.add(data)
        if _TOKEN not in data:
            if _OLD_TOKEN in data:          # a v0.6 log: decode it all, as the plain reader
                records, bad = _decode_lines(data.decode("latin-1"))
                self.records += records
                self.bad += bad
                self.lines += len(records)
            return
        if self.all_evals:
            self.lines += data.count(_TOKEN)
        else:
            self.uncounted = True
        last = data.rfind(_TOKEN)
        last_start = data.rfind(b"\n", 0, last) + 1
        self.last_line = data[last_start:_line_end(data, last)]
        lines, starts, decoded_to = [], set(), 0
        for match in self.keys.finditer(data):
            if match.start() < decoded_to:   # a line logging two keys is decoded once
                continue
            start = data.rfind(b"\n", 0, match.start()) + 1
            decoded_to = _line_end(data, match.end())
            lines.append(data[start:decoded_to])
            starts.add(start)
        if last_start in starts:
            self.last_line = b""
        if lines:
            self._decode(b"\n".join(lines))
        if not self.all_evals:
            self._find_last_eval(data, starts, last_start)

    def _find_last_eval(self, data: bytes, decoded: set[int], last_start: int) -> None:
        """The last evaluation in `data`, searched backwards and decoded alone (lines the
        forward search decoded already are skipped: their records are in)."""
        end = len(data)
        while (at := data.rfind(_EVAL_NAME, 0, end)) >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            end = start                      # next: the lines before this one
            line_end = _line_end(data, at)
            if start in decoded or not _EVAL_KEY.search(data, start, line_end):
                continue
            if start == last_start:
                self.last_line = b""
            text = data[start:line_end].decode("latin-1")
            records, bad = _decode_whole_lines(text) or _decode_lines(text)
            self.bad += bad
            found = [r for r in records if r["key"] == EVAL_KEY]
            if found:
                self.last_eval = found
                return

    def _decode(self, lines: bytes) -> None:
        """Decode whole lines exactly as the plain reader decodes them (which may split them
        further, at carriage returns and the like)."""
        text = lines.decode("latin-1")
        records, bad = _decode_whole_lines(text) or _decode_lines(text)
        self.records += records
        self.bad += bad
        # Their tokens were counted as good lines: count what they really hold instead.
        self.lines += len(records) - lines.count(_TOKEN)

    def finish(self) -> None:
        if self.last_line:                   # a job killed mid-write cuts the last line
            self._decode(self.last_line)
            self.last_line = b""
        self.records += self.last_eval
        self.last_eval = []

    def mllog_lines(self) -> int | None:
        return None if self.uncounted else self.lines


def _line_end(data: bytes, pos: int) -> int:
    end = data.find(b"\n", pos)
    return len(data) if end < 0 else end


def _in_one_piece(handle, size: int, limit: int, path) -> bytes:
    data = handle.read(size + 1)            # (asking for more would allocate more)
    if len(data) > size:                    # it grew since it was measured: read on
        data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise MlpaceError(f"{path} grew past {limit / 2**20:.0f} MB while being read")
    return data


def _in_chunks(handle, chunk_bytes: int, limit: int, path):
    """Whole lines, about `chunk_bytes` at a time; the last chunk holds the last lines and an
    unfinished last line together."""
    rest, read, ready = [], 0, b""   # rest: a line going on in the next block; ready: whole
    while block := handle.read(chunk_bytes):     # lines, held back in case the file ends
        read += len(block)
        if read > limit:
            raise MlpaceError(f"{path} grew past {limit / 2**20:.0f} MB while being read")
        cut = block.rfind(b"\n") + 1
        if not cut:
            rest.append(block)          # joined once the line ends, never block by block
            continue
        if ready:
            yield ready
        whole = block if cut == len(block) else block[:cut]
        ready = b"".join([*rest, whole]) if rest else whole
        rest = [block[cut:]] if cut < len(block) else []
    if ready or rest:
        yield b"".join([ready, *rest]) if rest else ready


def parse_result_file(path: str | os.PathLike, limit: int = MAX_FILE_BYTES,
                      chunk_bytes: int = CHUNK_BYTES, whole_bytes: int = WHOLE_BYTES,
                      all_evals: bool = True) -> TrainingRun:
    """Parse one result file with the fast reader (module doc); raises MlpaceError only when
    it cannot be read at all (`mlpace.io.open_limited` refuses links, folders, devices and
    sizes over `limit`), or its MLLOG lines would cost the official parser more than
    MAX_OFFICIAL_PARSE_COST (not a log anyone can check).

    `all_evals=False` is the scoring reader (`mlpace summarize`): the same TrainingRun, but
    `evals` holds the last evaluation of the file (plus any on a line decoded for another
    key) and `epochs` follows from those, `all_evals` is False, and `mllog_lines` is None
    when the file has MLLOG lines (they are not counted). Enough for a score: a run that
    reached its target evaluated last (the caller reads every evaluation when it did not)."""
    try:
        with open_limited(path, limit) as handle:
            size = os.fstat(handle.fileno()).st_size
            scan = _Scan(size, path, whole=size <= whole_bytes, all_evals=all_evals)
            chunks = [_in_one_piece(handle, size, limit, path)] if scan.parse_cost.whole \
                else _in_chunks(handle, chunk_bytes, limit, path)
            for data in chunks:
                scan.chunk(data)
    except FileNotFoundError:
        raise MlpaceError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise MlpaceError(f"{path} is a folder, not a result file") from None
    except OSError as err:
        raise MlpaceError(f"cannot read {path}: {err.strerror or err}") from None
    scan.finish()
    run = run_from_records(str(Path(path)), scan.records, scan.bad, scan.lines)
    run.mllog_lines, run.all_evals = scan.mllog_lines(), all_evals
    return run
