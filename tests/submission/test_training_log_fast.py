"""The fast reader of result files (byte search, only the lines that matter decoded) gives the
same TrainingRun as the plain reader that decodes every line: on every published fixture log,
on hand-made messy logs, and on generated ones."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpace.submission.training_log import (RUN_KEYS, _decode_lines, parse_result_file,
                                            parse_result_text, run_from_records)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
LOGS = sorted(FIXTURES.glob("training_v*/*/results/*/*/result_*.txt"))


def text_of(path: Path) -> str:
    return path.read_bytes().decode("latin-1")       # every byte decodes, as officially


def plain(path: Path):
    return parse_result_text(text_of(path), str(path))


def test_fixture_logs_are_there():
    # 135 v1.0 logs and 70 v3.1 logs: shell noise, aborted and failed runs among them.
    assert len(LOGS) == 205


@pytest.mark.parametrize("path", LOGS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fast_reader_equals_plain_reader_on_published_logs(path):
    fast = parse_result_file(path)
    assert asdict(fast) == asdict(plain(path))
    assert fast.mllog_lines > 0 and fast.run_start_ms is not None


def test_non_converged_fixture_runs_read_alike():
    stopped = [p for p in LOGS if plain(p).status not in ("success", None)]
    assert {plain(p).status for p in stopped} == {"aborted", "fail"}
    for path in stopped:
        fast = parse_result_file(path)
        assert fast.minutes is None and asdict(fast) == asdict(plain(path))


def test_small_chunks_split_lines_anywhere():
    # Lines cut by chunk boundaries are carried over: the same run at any chunk size.
    path = FIXTURES / "training_v1.0/NVIDIA/results/dgxa100_ngc21.05_pytorch/maskrcnn/result_0.txt"
    expected = asdict(plain(path))
    for chunk in (1, 97, 4096, 65_536):
        assert asdict(parse_result_file(path, chunk_bytes=chunk, whole_bytes=0)) == expected, chunk


def test_run_keys_hold_everything_a_run_is_made_of():
    # A TrainingRun folded from only the RUN_KEYS records is the one folded from all records:
    # a field read from a key missing in RUN_KEYS would be lost by the fast reader.
    for path in LOGS[::10]:
        records, bad = _decode_lines(text_of(path))
        wanted = [r for r in records if r["key"] in RUN_KEYS]
        assert len(wanted) < len(records)
        assert asdict(run_from_records(str(path), wanted, bad, len(records))) == \
            asdict(run_from_records(str(path), records, bad))


def record(key, time_ms, value=None, **metadata) -> str:
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms, "event_type": "POINT_IN_TIME",
                                     "key": key, "value": value, "metadata": metadata})


def write(tmp_path, lines: list[str], end="\n") -> Path:
    path = tmp_path / "result_0.txt"
    path.write_bytes(("\n".join(lines) + end).encode("latin-1"))
    return path


MESSY = [
    "+ srun --container-name=x python train.py",
    record("submission_org", 1, "ACME"),
    'noise with a JSON dict {"key": "run_start", "value": null} but no token',
    record("init_start", 5), record("init_start", 6),            # two ranks
    "\r 10%|#  | 1/10\r 20%|## | 2/10" + "\r" + record("init_stop", 9),
    record("run_start", 8)[:-1],                                 # cut, yet ends with a brace
    record("eval_target", 8, 0.75) + ", " + record("seed", 8, 1)[9:],   # two records, one token
    'rank3: :::MLLOG {"time_ms":10,"key":"run_start","value":null,"metadata":{}}',   # compact JSON
    record("train_loss", 11, 2.5, epoch_num=1),
    ":::MLLOG {\"time_ms\": 12, \"key\": \"run_stop\", \"value\": null, \"metadata\": {\"sta",  # cut
    ':::MLLOG {"key": "run_stop", "time_ms": NaN, "value": null, "metadata": {"status": "success"}}',
    ':::MLLOG {"key": "run_stop", "time_ms": 1e999, "value": null, "metadata": {}}',
    record("eval_accuracy", 20, {"BBOX": 0.3, "SEGM": 0.2}, epoch_num=1),
    record("eval_accuracy", 30, 0.5, epoch_num=2) + "   ",
    record("global_batch_size", 31, 256),
    record("seed", 32, 7) + "\x85 is no line break in a text file: this line is corrupt",
    record("run_stop", 40, status="success"),
    record("eval_accuracy", 50, 0.9, epoch_num=3),               # after run_stop
    "Traceback (most recent call last): café",
    ':::MLLOG {"time_ms": 60, "key": "epoch_st',                 # the job was killed here
]


@pytest.mark.parametrize("end", ["\n", ""])
def test_messy_log_read_alike(tmp_path, end):
    path = write(tmp_path, MESSY, end)
    fast, text = parse_result_file(path), plain(path)
    assert asdict(fast) == asdict(text)
    assert (fast.submitter, fast.init_start_ms, fast.init_stop_ms) == ("ACME", 5.0, 9.0)
    assert (fast.run_start_ms, fast.run_stop_ms, fast.status) == (10.0, 40.0, "success")
    assert fast.minutes == 30 / 60 / 1000 and fast.global_batch_size == 256
    assert fast.evals == [(1, 20.0, {"BBOX": 0.3, "SEGM": 0.2}), (2, 30.0, 0.5), (3, 50.0, 0.9)]
    assert fast.epochs == 2.0
    assert fast.seed is None and fast.target is None
    assert fast.bad_lines == 7 and fast.mllog_lines == 11


def test_noise_naming_a_key_after_the_last_record(tmp_path):
    # The last MLLOG line is decoded once, whatever follows it.
    path = write(tmp_path, [record("run_start", 1), record("run_stop", 3, status="success"),
                            record("eval_accuracy", 4, 0.5, epoch_num=1),
                            'echo \'{"key": "seed", "value": 4}\' | tee out.json'])
    fast = parse_result_file(path)
    assert asdict(fast) == asdict(plain(path))
    assert fast.evals == [(1, 4.0, 0.5)] and fast.seed is None


def test_two_records_behind_one_token_are_one_bad_line(tmp_path):
    # Decoded together in one JSON array, they would read as two good records.
    path = write(tmp_path, [record("run_start", 1),
                            record("eval_target", 2, 0.75) + ", " + record("seed", 2, 1)[9:],
                            record("run_stop", 3, status="success")])
    fast = parse_result_file(path)
    assert asdict(fast) == asdict(plain(path))
    assert fast.target is None and fast.seed is None and fast.bad_lines == 1


def test_v06_log_read_alike(tmp_path):
    path = write(tmp_path, [
        "some noise",
        ':::MLL 1558640213.500 run_start: {"value": null, "metadata": {"file": "a.py"}}',
        ':::MLL 1558640243.500 eval_accuracy: {"value": 0.7, "metadata": {"epoch_num": 3}}',
        ':::MLL 1558640273.500 run_stop: {"value": null, "metadata": {"status": "success"}}',
    ])
    fast = parse_result_file(path)
    assert asdict(fast) == asdict(plain(path))
    assert fast.minutes == pytest.approx(1.0) and fast.epochs == 3.0


def test_corrupt_step_line_mid_log_is_the_one_difference(tmp_path):
    # Documented: per-step lines are counted, never decoded, so a corrupt one in the middle
    # of a log goes unnoticed (nothing a TrainingRun holds comes from it).
    path = write(tmp_path, [record("run_start", 1), ':::MLLOG {"time_ms": 2, "key": "train_lo',
                            record("run_stop", 3, status="success")])
    fast, text = asdict(parse_result_file(path)), asdict(plain(path))
    assert (text["bad_lines"], text["mllog_lines"]) == (1, 2)
    assert (fast["bad_lines"], fast["mllog_lines"]) == (0, 3)
    for name in ("bad_lines", "mllog_lines", "notes"):
        del fast[name], text[name]
    assert fast == text


def test_empty_and_token_free_files(tmp_path):
    for lines in ([], ["no log here", "at all"]):
        path = write(tmp_path, lines)
        fast = parse_result_file(path)
        assert asdict(fast) == asdict(plain(path)) and fast.mllog_lines == 0


KEYS = [*RUN_KEYS, "train_loss", "epoch_start", "weights_initialization"]
good_line = st.builds(
    lambda key, t, v, e: record(key, t, v, epoch_num=e) if key != "run_stop" else
    record(key, t, v, status=e and "success" or "aborted"),
    st.sampled_from(KEYS), st.integers(0, 10**13),
    st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    st.integers(0, 3))
noise = st.text(st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\n"),
                max_size=30).filter(lambda s: ":::MLL" not in s)
# Cutting a record anywhere: corrupt lines among the ones the fast reader decodes (RUN_KEYS).
cut_line = st.builds(lambda key, t, at: (lambda r: r[:r.index('"value"') + at])(record(key, t)),
                     st.sampled_from(RUN_KEYS), st.integers(0, 10**6), st.integers(0, 120))
line = st.one_of(good_line, good_line.map(lambda r: "[1,0]<stdout>: " + r), noise,
                 st.builds(lambda n, r: n + "\r" + r, noise, good_line), cut_line)


def generated_logs(test):
    """Hypothesis over logs of up to 25 generated lines, every line the fast reader needs
    possibly cut, the last line cut anywhere (a killed job), read in chunks of 1-300 bytes:
    `test(tmp_path, path, chunk)`."""
    def generated(tmp_path, lines, last_cut, chunk, end):
        path = write(tmp_path, lines + [record("epoch_stop", 7)[:last_cut]], end)
        test(tmp_path, path, chunk)
    generated.__name__, generated.__qualname__ = test.__name__, test.__qualname__   # pytest's name
    return settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])(
        given(lines=st.lists(line, max_size=25), last_cut=st.integers(9, 200),
              chunk=st.integers(1, 300), end=st.sampled_from(["\n", ""]))(generated))


@generated_logs
def test_generated_logs_read_alike(tmp_path, path, chunk):
    assert asdict(parse_result_file(path, chunk_bytes=chunk, whole_bytes=chunk)) == asdict(plain(path))


def test_worker_processes_parse_alike(monkeypatch):
    # A round's worth of bytes goes to worker processes, in batches, back in order.
    from mlpace.submission import summarize
    monkeypatch.setattr(summarize, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(summarize, "PARALLEL_BATCH_FILES", 3)
    paths = LOGS[:40] + [FIXTURES / "missing" / "result_0.txt"]
    parallel = summarize.parse_many(paths, workers=2)
    assert [asdict(r) for r in parallel] == [asdict(r) for r in summarize.parse_many(paths, workers=1)]
    assert parallel[-1].notes[0].startswith("unreadable") and parallel[0].mllog_lines > 0


def test_logs_too_costly_for_the_official_parser_are_refused(tmp_path):
    from mlpace.errors import MlpaceError
    base = [record("run_start", 1), record("run_stop", 2, status="success")]
    long_line = record("train_loss", 3, "v" * 10_000)
    with pytest.raises(MlpaceError, match="far longer than any real log"):
        parse_result_file(write(tmp_path, base + [long_line] * 1000))        # 1e11
    assert parse_result_file(write(tmp_path, base + [long_line] * 30)).minutes is not None   # 3e9


def test_parse_cost_counts_an_unfinished_last_line_with_the_rest(tmp_path):
    # Short lines under the bound, then a long last line without a newline: together over.
    from unittest import mock

    from mlpace.errors import MlpaceError
    from mlpace.submission import training_log
    path = write(tmp_path, [":::MLL " + "x" * 5] * 20 + [":::MLL " + "x" * 93], end="")
    assert training_log.official_parse_cost(text_of(path)) == 20 * 12**2 + 100**2
    with mock.patch.object(training_log, "MAX_OFFICIAL_PARSE_COST", 100**2 + 20 * 12**2 - 1):
        with pytest.raises(MlpaceError, match="far longer"):
            parse_result_file(path)


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(0, 400), max_size=60), mllog=st.lists(st.booleans(), max_size=60),
       limit=st.integers(1, 10**6), chunk=st.sampled_from([7, 100, 4096, 10**6]),
       end=st.sampled_from(["\n", "", "\r"]))
def test_parse_cost_refusal_is_exact(tmp_path_factory, lengths, mllog, limit, chunk, end):
    # The windowed bound never refuses a log the exact count accepts, nor the reverse.
    from unittest import mock

    from mlpace.errors import MlpaceError
    from mlpace.submission import training_log
    lines = [(":::MLL " if flag else "") + "x" * n for n, flag in zip(lengths, mllog)]
    path = write(tmp_path_factory.mktemp("cost"), lines, end)
    exact = training_log.official_parse_cost(text_of(path))
    with mock.patch.object(training_log, "MAX_OFFICIAL_PARSE_COST", limit):
        try:
            parse_result_file(path, chunk_bytes=chunk, whole_bytes=chunk)
            refused = False
        except MlpaceError:
            refused = True
    assert refused == (exact > limit)


# ---------------------------------------------------------------- the scoring reader

# What the scoring reader (all_evals=False, `mlpace summarize`) may hold differently.
PARTIAL = ("evals", "epochs", "mllog_lines", "bad_lines", "notes", "all_evals")


def same_but_evals(scoring, full) -> None:
    """The scoring reader's run is the full one but for PARTIAL: its evaluations are some of
    the full ones, the last one among them; it counts no lines and fewer bad ones."""
    scoring, full = asdict(scoring), asdict(full)
    assert {k: v for k, v in scoring.items() if k not in PARTIAL} == \
        {k: v for k, v in full.items() if k not in PARTIAL}
    assert all(e in full["evals"] for e in scoring["evals"])
    assert full["evals"][-1:] == scoring["evals"][-1:] or not full["evals"]
    if scoring["mllog_lines"] is None:          # not counted, but there are some
        assert full["mllog_lines"] or full["bad_lines"]
    else:                                       # none, or a v0.6 log (decoded whole)
        assert scoring["mllog_lines"] == full["mllog_lines"]
    assert scoring["bad_lines"] <= full["bad_lines"] and scoring["all_evals"] is False


@pytest.mark.parametrize("path", LOGS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_scoring_reader_on_published_logs(path):
    scoring, full = parse_result_file(path, all_evals=False), parse_result_file(path)
    same_but_evals(scoring, full)
    # On real logs the last evaluation is the one before run_stop: same epochs, same notes.
    assert (scoring.epochs, scoring.notes, scoring.bad_lines) == (full.epochs, full.notes, full.bad_lines)
    assert scoring.mllog_lines is None and len(scoring.evals) <= 1 < len(full.evals)


def test_scoring_reader_on_the_messy_log(tmp_path):
    path = write(tmp_path, MESSY)
    scoring = parse_result_file(path, all_evals=False)
    same_but_evals(scoring, parse_result_file(path))
    assert scoring.evals == [(3, 50.0, 0.9)] and scoring.minutes == 30 / 60 / 1000


def test_scoring_reader_skips_a_cut_last_evaluation(tmp_path):
    # The job was killed while logging an evaluation: the one before it is the last one.
    path = write(tmp_path, [record("run_start", 1), record("eval_accuracy", 2, 0.5, epoch_num=1),
                            record("eval_accuracy", 3, 0.8, epoch_num=2),
                            record("run_stop", 4, status="success"),
                            record("eval_accuracy", 5, 0.9, epoch_num=3)[:-20]], end="")
    scoring = parse_result_file(path, all_evals=False)
    same_but_evals(scoring, parse_result_file(path))
    assert scoring.evals == [(2, 3.0, 0.8)] and scoring.bad_lines == 1


@generated_logs
def test_generated_logs_scored_alike(tmp_path, path, chunk):
    same_but_evals(parse_result_file(path, chunk_bytes=chunk, whole_bytes=chunk, all_evals=False),
                   parse_result_file(path))


def test_summarize_reads_every_evaluation_when_the_last_misses_the_target(tmp_path):
    # The closed rule asks whether ANY evaluation reaches the target: when the last one does
    # not, summarize reads them all rather than count the run as failed.
    import shutil

    from mlpace.submission.summarize import summarize
    nvidia = FIXTURES / "training_v1.0" / "NVIDIA"
    system = "dgxa100_ngc21.05_mxnet"
    org = tmp_path / "training_v1.0" / "NVIDIA"
    folder = org / "results" / system / "resnet"
    shutil.copytree(nvidia / "results" / system / "resnet", folder)
    (org / "systems").mkdir()
    shutil.copyfile(nvidia / "systems" / f"{system}.json", org / "systems" / f"{system}.json")
    before = {r.path: r.minutes for r in summarize(org).training[0].runs}
    path = folder / "result_0.txt"
    text = path.read_bytes().decode("latin-1")
    stop = text.index('"key": "run_stop"')
    at = text.rindex("\n", 0, stop) + 1                     # a low evaluation after the real ones
    late = record("eval_accuracy", 1, 0.1, epoch_num=99) + "\n"
    path.write_bytes((text[:at] + late + text[at:]).encode("latin-1"))
    [result] = summarize(org).training
    run = next(r for r in result.runs if r.path == str(path))
    assert run.minutes == before[str(path)] is not None and run.all_evals
    assert {r.path: r.minutes for r in result.runs} == before
