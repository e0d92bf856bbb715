"""The scale and target of a training result come from what its logs state, not from the round
folder it is filed under: a mini run packaged into training_v1.0/ is still mini, an mlpace log
that states neither (an older run) is unknown, and published logs stay reference. A system
description's counts are bounded when read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlpace import cli
from mlpace.errors import MlpaceError
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext, Workload
from mlpace.results import importers, queries
from mlpace.results.store import open_store
from mlpace.rules.benchmarks import get_spec
from mlpace.submission.sysinfo import capture_system_description

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
NVIDIA = FIXTURES / "training_v1.0" / "NVIDIA"
INTEL = FIXTURES / "training_v1.0" / "Intel"


class UntrainedResnet(Workload):
    """resnet at a scale, through the real timed run, with nothing to learn (each run converges at its one evaluation): what is tested is
    what the harness logs about the run, not what it reaches."""

    def __init__(self, scale: str):
        super().__init__(get_spec("resnet"), scale, config=None)

    def prepare_data(self, data_dir):
        pass

    def setup(self, ctx):
        pass

    def hyperparameters(self):
        return {"global_batch_size": 8}

    def train_samples(self):
        return 8

    def eval_samples(self):
        return 8

    def train_epoch(self, epoch):
        yield 8

    def evaluate(self, epoch):
        return 0.99         # every run converges at once: each result has a time


def mlpace_result(org: Path, scale: str, system: str = "laptop") -> Path:
    """Five runs of mlpace's timed run at `scale`, filed as a submission of org `org`."""
    folder = org / "results" / system / "resnet"
    folder.mkdir(parents=True)
    for seed in range(5):
        run_once(UntrainedResnet(scale), RunContext(seed=seed), folder / f"result_{seed}.txt",
                 max_epochs=1)
    (org / "systems").mkdir()
    description = capture_system_description(system_name=system, submitter=org.name, division="open")
    (org / "systems" / f"{system}.json").write_text(json.dumps(description))
    return folder


def drop_keys(folder: Path, *keys: str) -> None:
    """The logs as an mlpace run from before these keys were logged wrote them."""
    for log in folder.glob("result_*.txt"):
        lines = log.read_text().splitlines(keepends=True)
        log.write_text("".join(line for line in lines
                               if not any(f'"key": "{key}"' in line for key in keys)))


def stored(store, system: str) -> dict:
    with store.read() as conn:
        [row] = queries.training_results(conn, queries.Filters(system=system))
    return row


def test_a_mini_run_filed_under_a_published_round_stays_mini_with_its_target(db_url, tmp_path):
    mlpace_result(tmp_path / "training_v1.0" / "Org", "mini")
    store = open_store(db_url)
    report = importers.import_trees(store, [tmp_path / "training_v1.0", NVIDIA])
    assert report.failures == [] and report.added > 1
    row = stored(store, "laptop")
    assert row["round"] == "training v1.0"
    assert (row["scale"], queries.decode_target(row["target"])) == ("mini", 0.85)
    with store.read() as conn, pytest.raises(MlpaceError, match="mini scale against reference"):
        queries.compare(conn, "laptop", ["dgxa100_ngc21.05_mxnet"], "resnet")


def test_a_reference_run_of_mlpace_states_the_reference_target(db_url, tmp_path):
    mlpace_result(tmp_path / "own", "reference")
    store = open_store(db_url)
    importers.import_trees(store, [tmp_path / "own"])
    row = stored(store, "laptop")
    assert (row["round"], row["scale"], queries.decode_target(row["target"])) == \
        ("training local", "reference", 0.759)


def test_an_older_mlpace_log_stating_no_scale_is_unknown_even_under_a_published_round(db_url, tmp_path):
    folder = mlpace_result(tmp_path / "training_v1.0" / "Org", "mini")
    drop_keys(folder, "mlpace_scale", "mlpace_quality_target")     # mlpace_time_budget stays
    store = open_store(db_url)
    importers.import_trees(store, [tmp_path / "training_v1.0", NVIDIA])
    row = stored(store, "laptop")
    assert (row["scale"], queries.decode_target(row["target"])) == ("unknown", None)
    with store.read() as conn, pytest.raises(MlpaceError, match="unknown scale against reference"):
        queries.compare(conn, "laptop", ["dgxa100_ngc21.05_mxnet"], "resnet")


def test_published_logs_stay_reference_with_the_rounds_target(db_url):
    store = open_store(db_url)
    importers.import_trees(store, [NVIDIA])
    with store.read() as conn:
        rows = queries.training_results(conn, queries.Filters(benchmark="resnet"))
    assert rows and {(row["scale"], queries.decode_target(row["target"])) for row in rows} == \
        {("reference", 0.759)}


@pytest.mark.parametrize("field, value", [("number_of_nodes", "9" * 20),
                                          ("number_of_nodes", str(10**7 + 1)),
                                          ("accelerators_per_node", "9" * 20)])
def test_a_count_beyond_any_system_fails_its_submission_in_one_line_naming_the_file(
        db_url, tmp_path, field, value):
    org = shutil.copytree(INTEL, tmp_path / "tree" / "Intel")
    [path] = (org / "systems").glob("*.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    report = importers.import_trees(open_store(db_url), [tmp_path / "tree"])
    [failure] = report.failures
    assert report.added == 0 and "\n" not in failure
    assert path.name in failure and "too large" in failure


def test_the_cli_shows_a_mini_run_packaged_into_a_published_round_as_mini(tmp_path, capsys):
    mlpace_result(tmp_path / "training_v1.0" / "Org", "mini")
    db = tmp_path / "t.db"
    assert cli.main(["import", str(tmp_path / "training_v1.0"), "--db", str(db)]) == 0
    capsys.readouterr()
    assert cli.main(["results", "--all", "--format", "json", "--db", str(db)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["round"], row["scale"], row["target"]) == ("training v1.0", "mini", "0.85")
