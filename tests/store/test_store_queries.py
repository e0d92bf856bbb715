"""Queries on the results store, through the library and the CLI verbs (results, compare)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from mlpace import cli
from mlpace.results import queries
from mlpace.results.importers import import_trees
from mlpace.results.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"



@pytest.fixture(scope="module")
def db(module_db_url) -> str:
    """The published fixtures in a store, on each back end."""
    report = import_trees(open_store(module_db_url), [TRAINING, INFERENCE])
    assert report.failures == []
    return module_db_url


def mlpace(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI with this area's verbs only (other areas' modules are not needed here)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["mlpace.commands.store"])
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_filters_select_the_matching_results(db):
    with open_store(db).read() as conn:
        resnet = queries.training_results(conn, queries.Filters(benchmark="resnet", division="closed"))
        assert [(r["system"], round(r["minutes"], 2)) for r in resnet] == [
            ("tpu-v4-128-TF", 4.30), ("dgxa100_ngc21.05_mxnet", 28.77),
            ("1-node-8s-8380H-tensorflow", 943.97)]                      # fastest first
        a100 = queries.training_results(conn, queries.Filters(accelerator="a100"))
        assert {r["submitter"] for r in a100} == {"NVIDIA"} and len(a100) == 8
        preview = queries.training_results(conn, queries.Filters(availability="preview"))
        assert {r["system"] for r in preview} == {"tpu-v4-128-TF"}
        onprem = queries.training_results(conn, queries.Filters(availability="onprem", benchmark="resnet"))
        assert {r["submitter"] for r in onprem} == {"NVIDIA", "Intel"}     # a status names its category
        offline = queries.inference_results(conn, queries.Filters(scenario="offline", submitter="intel",
                                                                  benchmark="resnet50"))
        assert {r["system"] for r in offline} == {"1-node-2S-ICX-OpenVINO-INT8", "1-node-2S-ICX-PyTorch-INT8"}
        assert all(r["metric"] == "Samples per second" and r["value"] > 1000 for r in offline)


def test_results_verb_prints_table_csv_and_json(db, monkeypatch, capsys):
    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db, "--benchmark", "bert")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["round", "division", "availability"]
    assert len(lines) == 1 + 3 and "21.69" in out and "27.75" in out

    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db, "--division", "open",
                          "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["system"], r["benchmark"]) for r in rows] == [("ipu-pod16-POPART-open", "bert")]

    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db, "--kind", "inference",
                          "--submitter", "alibaba", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 6 and {r["benchmark"] for r in rows} == {"ssd-mobilenet"}
    assert {r["scenario"] for r in rows} == {"Offline", "SingleStream"}


def test_compare_gives_speedups_per_common_benchmark(db, monkeypatch, capsys):
    code, out, _ = mlpace(monkeypatch, capsys, "compare", "tpu-v4-128-TF", "--against",
                          "dgxa100_ngc21.05_mxnet", "dgxa100_ngc21.05_pytorch", "--db", db,
                          "--format", "json")
    assert code == 0
    speedup = {(r["benchmark"], r["against"]): r["speedup"] for r in json.loads(out)}
    assert set(speedup) == {("resnet", "dgxa100_ngc21.05_mxnet"), ("ssd", "dgxa100_ngc21.05_mxnet"),
                            ("bert", "dgxa100_ngc21.05_pytorch"), ("maskrcnn", "dgxa100_ngc21.05_pytorch")}
    assert speedup[("resnet", "dgxa100_ngc21.05_mxnet")] == pytest.approx(28.77 / 4.30, rel=2e-3)


def test_compare_and_import_errors_are_one_line(db, monkeypatch, capsys, tmp_path):
    code, _, err = mlpace(monkeypatch, capsys, "compare", "no-such-system", "--against", "tpu", "--db", db)
    assert code == 2 and err.startswith("error: no system named 'no-such-system'")
    code, _, err = mlpace(monkeypatch, capsys, "compare", "dgxa100", "--against", "tpu", "--db", db)
    assert code == 2 and "matches several systems" in err
    code, _, err = mlpace(monkeypatch, capsys, "import", str(tmp_path / "missing"), "--db", db)
    assert code == 2 and err.strip().splitlines() == [f"error: {tmp_path / 'missing'} does not exist"]
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    code, _, err = mlpace(monkeypatch, capsys, "results", "--db", str(tmp_path / "notes.txt"))
    assert code == 2 and err.strip().splitlines() == [
        f"error: results store sqlite:///{tmp_path / 'notes.txt'}: file is not a database"]
    code, _, err = mlpace(monkeypatch, capsys, "results", "--db", "nosuchdialect://x")
    assert code == 2 and err.startswith("error: cannot open results store nosuchdialect://x")


def test_import_verb_reports_counts_and_fails_on_a_bad_submission(db_url, monkeypatch, capsys, tmp_path):
    shutil.copytree(TRAINING / "Intel", tmp_path / "tree" / "Intel")
    shutil.copytree(TRAINING / "Graphcore", tmp_path / "tree" / "Graphcore")
    bad = tmp_path / "tree/Graphcore/results/ipu-pod16-POPART-open/bert/result_3.txt"
    bad.write_text("")
    code, out, err = mlpace(monkeypatch, capsys, "import", str(tmp_path / "tree"), "--db", db_url)
    assert code == 2
    assert "Intel (training local" in out and "1 added" in out
    assert f"error: Graphcore (training local) not imported: {bad}: no :::MLLOG lines" in err


def test_history_gives_best_per_round_and_speedup(db_url):
    store = open_store(db_url)
    import_trees(store, [TRAINING / "NVIDIA", TRAINING / "Intel"], round_name="training v1.0")
    import_trees(store, [TRAINING / "Google"], round_name="training v1.1")
    with store.read() as conn:
        rows = {(r["benchmark"], r["round"]): r for r in queries.history(conn)}
    assert rows[("resnet", "training v1.0")]["system"] == "dgxa100_ngc21.05_mxnet"
    later = rows[("resnet", "training v1.1")]
    assert later["value"] == pytest.approx(4.30, abs=0.005) and later["unit"] == "minutes"
    assert later["speedup_vs_previous"] == pytest.approx(28.77 / 4.30, rel=2e-3)
    assert rows[("resnet", "training v1.0")]["speedup_vs_previous"] is None
    assert ("minigo", "training v1.1") not in rows     # Google did not submit minigo


def test_inference_history_takes_the_best_valid_closed_result(db):
    with open_store(db).read() as conn:
        rows = {r["benchmark"]: r for r in queries.history(conn, "inference")}
    offline = rows["resnet50 Offline"]
    assert offline["system"] == "1-node-2S-ICX-OpenVINO-INT8" and offline["value"] == pytest.approx(4223.33)
    assert offline["unit"] == "Samples per second"
    single = rows["ssd-mobilenet SingleStream"]                  # latency: the lowest wins
    assert single["unit"].endswith("(ms)") and single["system"].startswith("A100")
    assert not any(name.startswith("efficientnet") for name in rows)   # Krai is open division
