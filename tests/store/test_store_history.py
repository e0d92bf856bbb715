"""What a stored number may be compared with (scale, target, division travel with every result),
and a store that keeps every result set a system made - on both back ends, and in a store
migrated from the previous schema version."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from mlpace import cli
from mlpace.errors import MlpaceError
from mlpace.report.site import build_site
from mlpace.results import importers, migrations, queries, schema
from mlpace.results.store import open_store

import store_schema_v1

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"
DAY_MS = 86_400_000


def write_mlpace_result(org_folder: Path, system: str, benchmark: str, minutes: list[float | None],
                        start_ms: int = 1_760_000_000_000, target=0.85, scale: str | None = None,
                        config: dict | None = None, division: str = "open") -> Path:
    """A result as mlpace's own harness writes it: official mllog lines, the system JSON and,
    when given, score.json (which declares the scale) and mlpace_config.json."""
    from mlpace.harness.mlperf_log import MLPerfLog, constants
    from mlpace.submission.sysinfo import capture_system_description

    folder = org_folder / "results" / system / benchmark
    folder.mkdir(parents=True)
    for i, run_minutes in enumerate(minutes):
        log = MLPerfLog(folder / f"result_{i}.txt")
        start = start_ms + i * 10_000_000
        for key, value in ((constants.SUBMISSION_BENCHMARK, benchmark), (constants.SUBMISSION_ORG, "mlpace"),
                           (constants.SUBMISSION_DIVISION, division), (constants.SUBMISSION_STATUS, "onprem"),
                           (constants.SUBMISSION_PLATFORM, system)):
            log.event(key, value, time_ms=start - 100)
        log.event(constants.SEED, 1000 + i, time_ms=start - 50)
        log.event("eval_target", target, time_ms=start - 50)
        log.start(constants.RUN_START, time_ms=start)
        span = (run_minutes or 2.0) * 60_000
        for epoch, quality in ((1, 0.4), (2, 0.7), (3, 0.86 if run_minutes else 0.8)):
            log.event(constants.EVAL_ACCURACY, quality, time_ms=int(start + span * epoch / 3), epoch_num=epoch)
        status = constants.SUCCESS if run_minutes else constants.ABORTED
        log.end(constants.RUN_STOP, time_ms=int(start + span), status=status)
        log.close()
    if scale:
        (folder / "score.json").write_text(json.dumps({"benchmark": benchmark, "scale": scale,
                                                       "target": target}))
    if config:
        (folder / "mlpace_config.json").write_text(json.dumps(config))
    (org_folder / "systems").mkdir(exist_ok=True)
    description = capture_system_description(system_name=system, submitter="mlpace", division=division)
    (org_folder / "systems" / f"{system}.json").write_text(json.dumps(description))
    return folder


def mlpace(monkeypatch, capsys, *argv) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["mlpace.commands.store"])
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- scale, target, division

def test_own_mini_results_carry_their_facts_and_never_compare_with_published(db_url, tmp_path,
                                                                              monkeypatch, capsys):
    write_mlpace_result(tmp_path / "out" / "mlpace", "laptop_cpu_pytorch", "resnet",
                        [10.0, 12.0, 11.0, None, 9.0])
    store = open_store(db_url)
    assert importers.import_trees(store, [tmp_path / "out"]).added == 1
    importers.import_trees(store, [TRAINING / "NVIDIA"])
    with store.read() as conn:
        row = queries.training_results(conn, queries.Filters(system="laptop"))[0]
        # olympic mean: the aborted run is the dropped slowest, 9.0 the dropped fastest
        assert row["round"] == "training local" and row["minutes"] == pytest.approx(11.0)
        assert (row["runs_counted"], row["runs_failed"], row["score"]) == (3, 1, "olympic")
        assert queries.decode_target(row["target"]) == 0.85            # from the log, not the rules
        assert (row["scale"], row["metric"], row["division"]) == ("mini", "top-1 accuracy", "open")
        with pytest.raises(MlpaceError, match="mini scale against reference scale"):
            queries.compare(conn, "laptop_cpu_pytorch", ["dgxa100_ngc21.05_mxnet"])
    code, out, err = mlpace(monkeypatch, capsys, "compare", "laptop_cpu_pytorch", "--against",
                            "dgxa100_ngc21.05_mxnet", "--db", db_url)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "error: cannot compare laptop_cpu_pytorch and dgxa100_ngc21.05_mxnet on resnet: mini scale "
        "against reference scale; times at different scales are not comparable"]


def test_published_results_are_reference_scale_with_the_rounds_official_target(db_url):
    store = open_store(db_url)
    assert importers.import_trees(store, [TRAINING, FIXTURES / "training_v3.1", INFERENCE]).failures == []
    with store.read() as conn:
        rows = queries.training_results(conn)
        inference = queries.inference_results(conn)
        v10 = {(r["system"], r["benchmark"]): r for r in rows if r["round"] == "training v1.0"}
        assert {r["scale"] for r in rows} == {"reference"} and {r["scale"] for r in inference} == {"reference"}
        assert queries.decode_target(v10[("tpu-v4-128-TF", "resnet")]["target"]) == 0.759
        assert queries.decode_target(v10[("dgxa100_ngc21.05_pytorch", "maskrcnn")]["target"]) == \
            {"BBOX": 0.377, "SEGM": 0.339}
        assert v10[("ipu-pod16-POPART-open", "bert")]["division"] == "open"
        assert v10[("ipu-pod16-POPART-open", "bert")]["metric"] == "masked-LM accuracy"
        # v3.1's "ssd" is RetinaNet: mlpace knows no v3.1 target, so it assumes none ...
        v31 = [r for r in rows if r["round"] == "training v3.1"]
        assert v31 and all(r["target"] == "null" for r in v31)
        # ... and will not divide a v3.1 time by a v1.0 one.
        with pytest.raises(MlpaceError, match="quality target of .* is not known"):
            queries.compare(conn, "primergy-cdi-A100x8-mxnet-ngc23.09", ["dgxa100_ngc21.05_mxnet"])
        # Two v1.0 systems compare; the open one is marked as such.
        [bert] = queries.compare(conn, "tpu-v4-128-TF", ["ipu-pod16-POPART-open"], "bert")
        assert (bert["division"], bert["against_division"]) == ("closed", "open")
        assert bert["speedup"] == pytest.approx(27.75 / 4.06, rel=2e-3)


def test_own_results_compare_when_scale_and_target_agree(db_url, tmp_path):
    write_mlpace_result(tmp_path / "a" / "mlpace", "laptop", "resnet", [10.0] * 5, scale="mini")
    write_mlpace_result(tmp_path / "b" / "mlpace", "desktop", "resnet", [5.0] * 5, scale="mini")
    # A user's own reference-scale run compares with the published round.
    write_mlpace_result(tmp_path / "c" / "mlpace", "my_dgx", "resnet", [20.0] * 5, target=0.759,
                        scale="reference", division="closed")
    store = open_store(db_url)
    importers.import_trees(store, [tmp_path / "a", tmp_path / "b", tmp_path / "c", TRAINING / "NVIDIA"])
    with store.read() as conn:
        [mini] = queries.compare(conn, "desktop", ["laptop"])
        [reference] = queries.compare(conn, "my_dgx", ["dgxa100_ngc21.05_mxnet"], "resnet")
    assert (mini["scale"], mini["target"], mini["speedup"]) == ("mini", "0.85", pytest.approx(2.0))
    assert reference["speedup"] == pytest.approx(28.77 / 20.0, rel=2e-3)


# ---------------------------------------------------------------- every result set is kept

def test_training_again_keeps_the_earlier_result_and_results_shows_the_latest(db_url, tmp_path,
                                                                             monkeypatch, capsys):
    day1, day2 = 1_760_000_000_000, 1_760_000_000_000 + 3 * DAY_MS
    write_mlpace_result(tmp_path / "run1" / "mlpace", "laptop", "resnet", [12.0] * 5, day1,
                        scale="mini", config={"batch_size": 32})
    write_mlpace_result(tmp_path / "run2" / "mlpace", "laptop", "resnet", [10.0] * 5, day2,
                        scale="mini", config={"batch_size": 64})
    store = open_store(db_url)
    assert importers.import_trees(store, [tmp_path / "run1"]).added == 1
    second = importers.import_trees(store, [tmp_path / "run2"])
    assert (second.added, second.unchanged) == (1, 0)                 # beside, not instead
    again = importers.import_trees(store, [tmp_path / "run1", tmp_path / "run2"])
    assert (again.added, again.unchanged) == (0, 2)                   # the same files: nothing new

    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db_url, "--format", "json")
    [latest] = json.loads(out)
    assert code == 0 and (latest["minutes"], latest["date"]) == (10.0, "2025-10-12T08:53:20Z")
    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db_url, "--format", "json", "--all")
    assert [(r["minutes"], r["date"][:10]) for r in json.loads(out)] == [(10.0, "2025-10-12"),
                                                                      (12.0, "2025-10-09")]
    with store.read() as conn:
        every = queries.training_results(conn, every=True)
        assert sorted(json.loads(r["config"])["batch_size"] for r in every) == [32, 64]
        steps = queries.progress(conn)
    assert [(r["minutes"], r["speedup_vs_first"]) for r in steps] == [
        (12.0, pytest.approx(1.0)), (10.0, pytest.approx(1.2))]


def test_a_single_converged_run_shows_its_time_marked_as_a_single_run(db_url, tmp_path,
                                                                      monkeypatch, capsys):
    write_mlpace_result(tmp_path / "out" / "mlpace", "laptop", "resnet", [7.5], scale="mini")
    write_mlpace_result(tmp_path / "out" / "mlpace", "laptop", "dlrm", [None], scale="mini")
    open_store(db_url)
    importers.import_trees(open_store(db_url), [tmp_path / "out"])
    code, out, _ = mlpace(monkeypatch, capsys, "results", "--db", db_url)
    lines = {line.split()[7]: line for line in out.splitlines()[1:]}
    assert code == 0 and re.search(r"7\.50\s+single run\s+0\s+0", lines["resnet"])
    assert re.search(r"-\s+none\s+0\s+1", lines["dlrm"])
    # A single run is not an olympic score: nothing to divide.
    write_mlpace_result(tmp_path / "other" / "mlpace", "desktop", "resnet", [5.0], scale="mini")
    importers.import_trees(open_store(db_url), [tmp_path / "other"])
    code, _, err = mlpace(monkeypatch, capsys, "compare", "laptop", "--against", "desktop", "--db", db_url)
    assert code == 2 and "no scored training benchmark in common" in err


# ---------------------------------------------------------------- the report

def test_report_keeps_mini_runs_apart_marks_open_results_and_shows_progress(db_url, tmp_path):
    write_mlpace_result(tmp_path / "run1" / "mlpace", "laptop", "resnet", [12.0] * 5, scale="mini")
    write_mlpace_result(tmp_path / "run2" / "mlpace", "laptop", "resnet", [10.0] * 5,
                        1_760_000_000_000 + DAY_MS, scale="mini")
    store = open_store(db_url)
    importers.import_trees(store, [TRAINING, tmp_path / "run1", tmp_path / "run2"])
    build_site(store, tmp_path / "site", compare_system="laptop")
    index = (tmp_path / "site" / "index.html").read_text()
    published, mini = index.split('<h2 id="mini-scale">')
    assert "laptop" not in published and "laptop" in mini and "dgxa100" not in mini
    assert ">10.00</a>" in mini                                  # the latest result set
    resnet = (tmp_path / "site" / "benchmarks" / "training-resnet.html").read_text()
    assert resnet.index("training v1.0") < resnet.index("mini scale") < resnet.index("laptop")
    bert = (tmp_path / "site" / "benchmarks" / "training-bert.html").read_text()
    assert "Graphcore ipu-pod16-POPART-open (open)" in bert      # open beside closed: marked
    compare = (tmp_path / "site" / "compare.html").read_text()
    assert "dgxa100" not in compare.split("<figure>")[0]          # no ratio with a published system
    history = (tmp_path / "site" / "history.html").read_text()
    rounds, own = history.split("<h2>Your systems over time</h2>")
    assert "laptop" not in rounds
    assert re.search(r"laptop.*resnet.*mini.*12\.00.*laptop.*resnet.*mini.*10\.00.*1\.20", own, re.S)
    assert own.count("<svg") == 1 and "laptop resnet (mini) over time" in own


# ---------------------------------------------------------------- migration from version 1

V1_TABLES = ["rounds", "submitters", "systems", "training_results", "training_runs", "inference_results"]


def make_version_1_store(url: str, source_url: str) -> None:
    """A real version-1 store at `url`: the v1 tables, holding what `source_url` (a current
    store) holds, column for column as version 1 had them."""
    engine, source = create_engine(url), create_engine(source_url)
    store_schema_v1.metadata.create_all(engine)
    with engine.begin() as conn, source.connect() as read:
        conn.execute(store_schema_v1.schema_version.insert().values(
            version=1, description="initial schema", applied_at="2026-11-01T00:00:00+00:00"))
        for name in V1_TABLES:
            table = store_schema_v1.metadata.tables[name]
            rows = [dict(row._mapping) for row in read.execute(
                select(*(schema.metadata.tables[name].c[c.name] for c in table.columns)))]
            if rows:
                conn.execute(table.insert(), rows)
            if conn.dialect.name == "postgresql":      # ids were given: move the sequence on
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                  f"(SELECT max(id) FROM {name}))"))
    engine.dispose()
    source.dispose()


def test_a_version_1_store_migrates_and_reads_as_a_fresh_import(db_url, tmp_path, monkeypatch, capsys):
    write_mlpace_result(tmp_path / "own" / "mlpace", "laptop", "resnet", [12.0] * 5)
    trees = [TRAINING, INFERENCE, tmp_path / "own"]
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    assert importers.import_trees(open_store(fresh), trees).failures == []
    make_version_1_store(db_url, fresh)

    store = open_store(db_url)                                    # migrates 1 -> 2 -> ...
    with store.read() as conn:
        assert migrations.current_version(conn) == migrations.latest_version() == 3

    def output(url):
        return [mlpace(monkeypatch, capsys, "results", "--db", url, "--format", "json", "--all",
                       "--kind", kind) for kind in ("training", "inference")]
    assert output(db_url) == output(fresh)
    assert '"scale": "mini"' in output(db_url)[0][1]               # the laptop's, from its target

    again = importers.import_trees(store, trees)                  # hashes survived: nothing new
    assert (again.added, again.failures) == (0, [])
    write_mlpace_result(tmp_path / "later" / "mlpace", "laptop", "resnet", [9.0] * 5,
                        1_760_000_000_000 + DAY_MS)
    assert importers.import_trees(store, [tmp_path / "later"]).added == 1   # kept beside
    with store.read() as conn:
        runs = conn.execute(select(schema.training_runs.c.id)).all()
        assert len(runs) == 135 + 5 + 5                            # no run lost in the rebuild
        [latest] = queries.training_results(conn, queries.Filters(system="laptop"))
        assert latest["minutes"] == pytest.approx(9.0)


def test_own_inference_results_take_their_scale_from_mlpace_summary(db_url, tmp_path):
    mine = tmp_path / "mine" / "closed" / "Alibaba"
    shutil.copytree(INFERENCE / "closed" / "Alibaba", mine)
    run = mine / "results/A10x1_TRT/ssd-mobilenet/Offline/performance/run_1"
    (run / "mlpace_summary.json").write_text(json.dumps({"benchmark": "ssd-mobilenet", "scale": "mini"}))
    store = open_store(db_url)
    assert importers.import_trees(store, [tmp_path / "mine", INFERENCE]).failures == []
    with store.read() as conn:
        rows = queries.inference_results(conn, queries.Filters(submitter="alibaba"))
        scales = {(r["round"], r["system"], r["scenario"]): r["scale"] for r in rows}
        history = queries.history(conn, "inference")
    assert scales[("inference local", "A10x1_TRT", "Offline")] == "mini"
    assert scales[("inference local", "A10x1_TRT", "SingleStream")] == "unknown"   # says nothing
    assert scales[("inference v1.1", "A10x1_TRT", "Offline")] == "reference"
    assert {r["round"] for r in history} == {"inference v1.1"}    # rounds are reference scale
