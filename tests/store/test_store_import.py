"""The results store's import: correct scores from real published logs, and the three safety
promises - idempotent, atomic per submission, safe with several importers at once - on both
SQLite and PostgreSQL (the `db_url` fixture, tests/store/conftest.py)."""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from mlpace.errors import MlpaceError
from mlpace.results import importers, migrations, schema
from mlpace.results.store import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"


# Published scores (official summarizer, ruleset 1.0.0), minutes.
PUBLISHED = {
    ("dgxa100_ngc21.05_mxnet", "resnet"): 28.77, ("dgxa100_ngc21.05_mxnet", "ssd"): 8.52,
    ("dgxa100_ngc21.05_mxnet", "unet3d"): 29.16, ("dgxa100_ngc21.05_pytorch", "bert"): 21.69,
    ("dgxa100_ngc21.05_pytorch", "maskrcnn"): 50.39, ("dgxa100_ngc21.05_pytorch", "rnnt"): 38.70,
    ("dgxa100_ngc21.05_tensorflow", "minigo"): 269.54,
    ("dgxa100_ngc21.05_merlin_hugectr", "dlrm"): 1.96, ("tpu-v4-128-TF", "bert"): 4.06,
    ("tpu-v4-128-TF", "dlrm"): 0.84, ("tpu-v4-128-TF", "maskrcnn"): 15.23,
    ("tpu-v4-128-TF", "resnet"): 4.30, ("tpu-v4-128-TF", "ssd"): 1.55,
    ("ipu-pod16-POPART-open", "bert"): 27.75, ("1-node-8s-8380H-tensorflow", "resnet"): 943.97,
}


def counts(store) -> dict[str, int]:
    with store.read() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (schema.rounds, schema.submitters, schema.systems,
                              schema.training_results, schema.training_runs,
                              schema.inference_results)}


def copy_org(org: str, dest: Path, round_folder: str = "training_v1.0") -> Path:
    target = dest / round_folder / org
    shutil.copytree(TRAINING / org, target)
    return target


def test_import_published_rounds_scores_match_the_published_ones(db_url, tmp_path):
    store = open_store(db_url)
    report = importers.import_trees(store, [TRAINING, INFERENCE])
    assert report.failures == []
    assert (report.submissions, report.added) == (7, 15 + 42)
    with store.read() as conn:
        rows = conn.execute(select(schema.systems.c.name, schema.training_results.c.benchmark,
                                   schema.training_results.c.minutes)
                            .select_from(schema.systems.join(schema.training_results))).all()
        assert {(name, bench): round(minutes, 2) for name, bench, minutes in rows} == PUBLISHED
        rounds = set(conn.execute(select(schema.rounds.c.name)).scalars())
        assert rounds == {"training v1.0", "inference v1.1"}
        # Krai's open-division folders are lower case; scenarios are stored as LoadGen spells them.
        scenarios = set(conn.execute(select(schema.inference_results.c.scenario)).scalars())
        assert scenarios == {"Offline", "Server", "SingleStream"}
        # Krai's offline/ folders hold SingleStream runs: kept, with a note saying so.
        mismatched = conn.execute(select(schema.inference_results.c.notes).where(
            schema.inference_results.c.notes != "")).scalars().all()
        assert len(mismatched) == 8
        assert all(n == "folder says Offline but LoadGen ran SingleStream"
                   for n in mismatched)
        divisions = dict(conn.execute(select(schema.systems.c.name, schema.systems.c.division)).all())
        assert divisions["firefly-tflite-v2.5.0-ruy"] == "open"
        assert divisions["ipu-pod16-POPART-open"] == "open"
    assert counts(store)["training_runs"] == 135


def test_importing_twice_adds_nothing_and_changed_files_are_kept_beside_the_old(db_url, tmp_path):
    tree = tmp_path / "tree"
    copy_org("Google", tree)
    store = open_store(db_url)
    first = importers.import_trees(store, [tree])
    before = counts(store)
    second = importers.import_trees(store, [tree])
    assert (first.added, second.added, second.unchanged) == (5, 0, 5)
    assert counts(store) == before

    # Drop one run of resnet: a new result set, added beside the old one (history is kept).
    (tree / "training_v1.0/Google/results/tpu-v4-128-TF/resnet/result_4.txt").unlink()
    third = importers.import_trees(store, [tree])
    assert (third.added, third.unchanged) == (1, 4)
    after = counts(store)
    assert after["training_results"] == before["training_results"] + 1
    assert after["training_runs"] == before["training_runs"] + 4
    assert importers.import_trees(store, [tree]).added == 0          # and that is idempotent too


def test_reimporting_unchanged_files_reads_none_of_them(db_url, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    copy_org("Google", tree)
    store = open_store(db_url)
    assert importers.import_trees(store, [tree]).added == 5
    before = counts(store)

    def never(*args):
        raise AssertionError("an unchanged file was read again")
    from mlpace.submission import summarize
    monkeypatch.setattr(importers, "_hash_files", never)
    monkeypatch.setattr(summarize, "parse_result_file", never)
    again = importers.import_trees(store, [tree])
    assert (again.added, again.unchanged, again.failures) == (0, 5, [])
    assert counts(store) == before


def test_a_file_rewritten_with_its_size_and_mtime_is_still_seen(db_url, tmp_path):
    # The stamp holds the change time too, which no tool sets back: the file is hashed again.
    import os
    tree = tmp_path / "tree"
    copy_org("Google", tree)
    store = open_store(db_url)
    importers.import_trees(store, [tree])
    log = tree / "training_v1.0/Google/results/tpu-v4-128-TF/resnet/result_0.txt"
    old, data = log.stat(), log.read_bytes()
    log.write_bytes(data.replace(b'"run_stop"', b'"run_stop"'.upper(), 1))     # same size
    os.utime(log, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (log.stat().st_size, log.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    again = importers.import_trees(store, [tree])
    assert (again.added, again.unchanged, again.failures) == (1, 4, [])


def test_a_changed_system_description_is_stored_on_reimport(db_url, tmp_path):
    import json
    tree = tmp_path / "tree"
    org = copy_org("Google", tree)
    store = open_store(db_url)
    importers.import_trees(store, [tree])
    desc_path = org / "systems" / "tpu-v4-128-TF.json"
    desc = json.loads(desc_path.read_text())
    desc["framework"] = "TensorFlow, a later note"
    desc_path.write_text(json.dumps(desc))
    assert importers.import_trees(store, [tree]).unchanged == 5
    with store.read() as conn:
        stored = conn.execute(select(schema.systems.c.framework)
                              .where(schema.systems.c.name == "tpu-v4-128-TF")).scalar()
    assert stored == "TensorFlow, a later note"


def test_a_bad_file_fails_its_whole_submission_and_names_the_file(db_url, tmp_path):
    tree = tmp_path / "tree"
    copy_org("Intel", tree)
    google = copy_org("Google", tree)
    broken = google / "results/tpu-v4-128-TF/ssd/result_2.txt"
    broken.write_text("Segmentation fault (core dumped)\n")
    store = open_store(db_url)
    report = importers.import_trees(store, [tree])
    assert report.submissions == 1                       # Intel went in
    assert len(report.failures) == 1
    assert str(broken) in report.failures[0] and "no :::MLLOG lines" in report.failures[0]
    with store.read() as conn:
        submitters = set(conn.execute(select(schema.submitters.c.name)).scalars())
    assert submitters == {"Intel"}                       # nothing of Google, not even its systems
    assert counts(store)["systems"] == 1


def test_a_failure_while_writing_leaves_nothing_half_imported(db_url, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    copy_org("Google", tree)
    store = open_store(db_url)
    real_write = importers._write_training
    written = []

    def write_then_fail(conn, system_id, result, source):
        if written:
            raise MlpaceError("disk full (simulated)")
        written.append(result.benchmark)
        return real_write(conn, system_id, result, source)

    monkeypatch.setattr(importers, "_write_training", write_then_fail)
    report = importers.import_trees(store, [tree])
    assert written and report.failures and "disk full" in report.failures[0]
    assert counts(store) == dict.fromkeys(counts(store), 0)   # the first result was rolled back
    monkeypatch.setattr(importers, "_write_training", real_write)
    assert importers.import_trees(store, [tree]).added == 5


def test_missing_system_description_is_named(db_url, tmp_path):
    org = copy_org("Intel", tmp_path / "tree")
    description = org / "systems/1-node-8s-8380H-tensorflow.json"
    description.unlink()
    report = importers.import_trees(open_store(db_url), [tmp_path / "tree"])
    assert report.submissions == 0 and str(description) in report.failures[0]


def test_folder_without_results_is_a_clear_error(db_url, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlpaceError, match="no results found"):
        importers.import_trees(open_store(db_url), [tmp_path / "empty"])
    with pytest.raises(MlpaceError, match="does not exist"):
        importers.import_trees(open_store(db_url), [tmp_path / "nowhere"])


def test_round_comes_from_the_folder_else_local_else_given(db_url, tmp_path):
    shutil.copytree(TRAINING / "Intel", tmp_path / "mine" / "Intel")
    store = open_store(db_url)
    importers.import_trees(store, [tmp_path / "mine"])
    importers.import_trees(store, [tmp_path / "mine"], round_name="training v9.9")
    with store.read() as conn:
        rounds = dict(conn.execute(select(schema.rounds.c.name, schema.rounds.c.version)).all())
    assert rounds == {"training local": "local", "training v9.9": "9.9"}


EVERYTHING = {"rounds": 2, "submitters": 6, "systems": 7 + 8, "training_results": 15,
              "training_runs": 135, "inference_results": 42}


def _import_in_process(db: str, trees: list[str], start, results) -> None:
    start.wait()
    report = importers.import_trees(open_store(db), trees)
    results.put((report.added, report.unchanged, report.failures))


def import_at_once(db: str, *tree_lists: list[str]) -> list[tuple]:
    """Run one import per list of trees, all in separate processes started together."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(tree_lists)), context.Queue()
    workers = [context.Process(target=_import_in_process, args=(db, trees, start, results))
               for trees in tree_lists]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(failures == [] for _, _, failures in outcomes)
    return outcomes


def test_two_imports_at_once_lose_nothing_and_double_nothing(db_url):
    open_store(db_url)
    outcomes = import_at_once(
        db_url, [str(TRAINING / "NVIDIA"), str(TRAINING / "Google"), str(INFERENCE)],
        [str(TRAINING / "Google"), str(TRAINING / "Intel"), str(TRAINING / "Graphcore"), str(INFERENCE)])
    # Every result was added exactly once, by one importer or the other.
    assert sum(added for added, _, _ in outcomes) == 15 + 42
    assert sum(unchanged for _, unchanged, _ in outcomes) == 5 + 42   # Google and inference twice
    assert counts(open_store(db_url)) == EVERYTHING


@pytest.mark.slow
def test_four_imports_at_once_of_overlapping_trees_and_a_new_store(db_url):
    # The store does not exist yet: the four also race to create the schema.
    orgs = [str(TRAINING / org) for org in ("NVIDIA", "Google", "Intel", "Graphcore")]
    lists = [orgs[i:] + orgs[:i] + [str(INFERENCE)] for i in range(4)]   # each in another order
    outcomes = import_at_once(db_url, *lists)
    assert sum(added for added, _, _ in outcomes) == 15 + 42
    assert sum(unchanged for _, unchanged, _ in outcomes) == 3 * (15 + 42)
    assert counts(open_store(db_url)) == EVERYTHING


def test_new_store_is_stamped_and_pending_migrations_run_in_order(db_url, tmp_path, monkeypatch):
    store = open_store(db_url)
    with store.read() as conn:
        assert migrations.current_version(conn) == migrations.latest_version()

    def add_notes(connection):
        connection.execute(text("ALTER TABLE systems ADD COLUMN notes TEXT"))

    latest = migrations.latest_version()
    known = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", known + [(latest + 1, "systems.notes", add_notes)])
    store = open_store(db_url)       # migrates to latest + 1 on open
    with store.read() as conn:
        assert migrations.current_version(conn) == latest + 1
        columns = [column["name"] for column in inspect(conn).get_columns("systems")]
    assert "notes" in columns
    open_store(db_url)                # nothing left to do: no error, still latest + 1

    monkeypatch.setattr(migrations, "MIGRATIONS", known)
    with pytest.raises(MlpaceError, match="newer than this mlpace"):
        open_store(db_url)


def test_reading_half_does_not_import_torch():
    code = ("import sys, mlpace.commands.store, mlpace.results.importers, mlpace.results.queries, "
            "mlpace.report.site; print(any(m.split('.')[0] == 'torch' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
