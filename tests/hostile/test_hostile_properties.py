"""Property-based tests: arbitrary mutations of real published files give a result or a clear
MlpaceError, never anything else (hypothesis; example counts kept modest for a 2-core CI:
MLPACE_HYPOTHESIS_EXAMPLES=2000 runs a deeper search)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpace.errors import MlpaceError
from mlpace.io import SafeTree, loads_bounded
from mlpace.submission.loadgen_log import (parse_accuracy_file, parse_accuracy_text,
                                           parse_detail_file, parse_summary_file, parse_summary_text)
from mlpace.submission.training_log import TrainingRun, parse_result_file, parse_result_text

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING_LOG = (FIXTURES / "training_v1.0" / "Graphcore" / "results" / "ipu-pod16-POPART-open" / "bert"
                / "result_0.txt").read_bytes()
SUMMARY = next(FIXTURES.glob("inference_v1.1/closed/Intel/results/*/*/Server/performance/run_1/"
                             "mlperf_log_summary.txt")).read_bytes()
ACCURACY = next(FIXTURES.glob("inference_v1.1/closed/*/results/*/*/*/accuracy/accuracy.txt")).read_bytes()
SETTINGS = settings(max_examples=int(os.environ.get("MLPACE_HYPOTHESIS_EXAMPLES", 60)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Pieces a hostile or broken log is made of: numbers too big for a float, NaN, brackets,
# the tokens themselves, separators, control characters, bytes that are not UTF-8.
NASTY = st.sampled_from([
    "9" * 400, "9" * 5000, "1e999", "-1e999", "NaN", "Infinity", "[" * 2000, "]", "{", "}", '"', "\\",
    ":::MLLOG ", ":::MLL ", "\n", "\r", "\x00", "\x1b[31m", "null", "true", "-", ".", "e", ":",
    '"time_ms": ', '"key": "run_stop", ', '"metadata": {"status": "success", "epoch_num": ',
    '"value": ', "Result is : ", "Scheduled samples per second : ", "target=", "target=- ", "result=PASS",
    "accuracy=", "mAP=", "90.00 percentile latency (ns) : ", "\udcff",
])


@st.composite
def mutated(draw, original: bytes):
    """`original` with a few splices: cut, dropped, repeated and inserted pieces."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            data += b"x"
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "truncate", "bytes", "duplicate"]))
        if kind == "insert":
            data[at:at] = draw(NASTY).encode("utf-8", "surrogateescape")
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 200))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "bytes":
            data[at:at] = draw(st.binary(max_size=40))
        else:
            end = min(len(data), at + draw(st.integers(1, 300)))
            data[at:at] = data[at:end] * draw(st.integers(1, 5))
    return bytes(data)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(data=mutated(TRAINING_LOG))
def test_training_log_parser_gives_a_run_or_a_clear_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("log"), "result_0.txt", data)
    try:
        run = parse_result_file(path)
    except MlpaceError:
        return
    assert isinstance(run, TrainingRun)
    assert run.minutes is None or (run.minutes == run.minutes and abs(run.minutes) != float("inf"))
    assert isinstance(parse_result_text(data.decode("latin-1")), TrainingRun)


@SETTINGS
@given(data=mutated(SUMMARY))
def test_loadgen_summary_parser_gives_a_result_or_a_clear_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("summary"), "mlperf_log_summary.txt", data)
    try:
        summary = parse_summary_file(path)
    except MlpaceError:
        return
    assert isinstance(summary["valid"], bool)
    assert isinstance(parse_summary_text(data.decode("latin-1")), dict)
    parse_detail_file(path)             # the same bytes as a detail log: MLLOG lines or none


@SETTINGS
@given(data=mutated(ACCURACY))
def test_accuracy_report_parser_gives_a_result_or_a_clear_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("accuracy"), "accuracy.txt", data)
    try:
        parsed = parse_accuracy_file(path)
    except MlpaceError:
        return
    assert all(isinstance(v, float) for v in parsed["metrics"].values())
    parse_accuracy_text(data.decode("latin-1"))


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from('[]{}",:0123456789.eE-+ \\nNaINfty'), max_size=400))
def test_json_reader_gives_a_value_or_a_clear_error(text):
    try:
        loads_bounded(text)
    except MlpaceError:
        pass


# Entries a hostile tree holds: (kind, name); names include the unsafe and the non-UTF-8.
NAMES = st.sampled_from([b"results", b"systems", b"result_1.txt", b"a.json", b"..x", b"-rf",
                         b"\xff\xfe", b"new\nline", b"x" * 240, b"Offline", b"offline", b"sub"])
ENTRIES = st.lists(st.tuples(st.sampled_from(["file", "folder", "link-out", "link-in", "loop",
                                              "dangling", "fifo"]), NAMES), max_size=12)


@settings(max_examples=int(os.environ.get("MLPACE_HYPOTHESIS_EXAMPLES", 40)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, nested=st.booleans())
def test_tree_walker_lists_only_real_files_and_folders_inside(tmp_path_factory, entries, nested):
    base = tmp_path_factory.mktemp("walk")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = base / "root"
    folder = root / "sub" if nested else root
    folder.mkdir(parents=True)
    for kind, name in entries:
        path = os.path.join(os.fsencode(folder), name)
        if os.path.lexists(path):
            continue
        if kind == "file":
            with open(path, "wb") as handle:
                handle.write(b"data")
        elif kind == "folder":
            os.mkdir(path)
        elif kind == "link-out":
            os.symlink(os.fsencode(outside), path)
        elif kind == "link-in":
            os.symlink(b".", path)
        elif kind == "loop":
            os.symlink(name, path)
        elif kind == "dangling":
            os.symlink(b"nowhere", path)
        else:
            os.mkfifo(path)
    tree = SafeTree(root)
    seen = []
    stack = [root]
    while stack:
        current = stack.pop()
        seen += tree.files(current)
        stack += tree.folders(current)
    for path in seen:
        assert not os.path.islink(path) and os.path.isfile(path)
        assert os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
    for path, reason in tree.problems:
        assert "\n" not in path and reason
        path.encode("utf-8")             # printable: no raw surrogates
    shutil.rmtree(base)
