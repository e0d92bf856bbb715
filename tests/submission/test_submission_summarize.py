"""`mlpace summarize`: exact published MLPerf scores, per-round rules, outputs, untrusted trees."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpace.errors import MlpaceError
from mlpace.submission.output import write_csv, write_json
from mlpace.rules.rounds import round_for_ruleset, round_from_path, round_from_time
from mlpace.submission.summarize import summarize

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"

# As published by MLCommons for training v1.0 (minutes, two decimals; DESIGN.md).
PUBLISHED = {
    ("dgxa100_ngc21.05_mxnet", "resnet"): 28.77, ("dgxa100_ngc21.05_mxnet", "ssd"): 8.52,
    ("dgxa100_ngc21.05_mxnet", "unet3d"): 29.16, ("dgxa100_ngc21.05_pytorch", "bert"): 21.69,
    ("dgxa100_ngc21.05_pytorch", "maskrcnn"): 50.39, ("dgxa100_ngc21.05_pytorch", "rnnt"): 38.70,
    ("dgxa100_ngc21.05_tensorflow", "minigo"): 269.54, ("dgxa100_ngc21.05_merlin_hugectr", "dlrm"): 1.96,
    ("tpu-v4-128-TF", "bert"): 4.06, ("tpu-v4-128-TF", "dlrm"): 0.84, ("tpu-v4-128-TF", "maskrcnn"): 15.23,
    ("tpu-v4-128-TF", "resnet"): 4.30, ("tpu-v4-128-TF", "ssd"): 1.55,
    ("ipu-pod16-POPART-open", "bert"): 27.75, ("1-node-8s-8380H-tensorflow", "resnet"): 943.97,
}
# Full-precision output of the official summarizer (mlperf-logging 4.1.68, ruleset 1.0.0) on the
# same files, where it agrees with the round (for NVIDIA it crashes on dlrm RCPs but prints these).
OFFICIAL = {
    ("dgxa100_ngc21.05_mxnet", "resnet"): 28.770861111111106, ("dgxa100_ngc21.05_mxnet", "ssd"): 8.520677777777777,
    ("dgxa100_ngc21.05_mxnet", "unet3d"): 29.162829687499997, ("dgxa100_ngc21.05_pytorch", "bert"): 21.692583333333335,
    ("dgxa100_ngc21.05_pytorch", "maskrcnn"): 50.391261111111106, ("dgxa100_ngc21.05_pytorch", "rnnt"): 38.69586666666666,
    ("dgxa100_ngc21.05_tensorflow", "minigo"): 269.53548333333333,
    ("dgxa100_ngc21.05_merlin_hugectr", "dlrm"): 1.9603944444444446,
    ("tpu-v4-128-TF", "bert"): 4.05868125, ("tpu-v4-128-TF", "dlrm"): 0.8430444444444444,
    ("tpu-v4-128-TF", "maskrcnn"): 15.226350000000002, ("tpu-v4-128-TF", "resnet"): 4.301094444444444,
    ("tpu-v4-128-TF", "ssd"): 1.5467777777777778, ("ipu-pod16-POPART-open", "bert"): 27.7538625,
    ("1-node-8s-8380H-tensorflow", "resnet"): 943.9688777777778,
}


@pytest.fixture(scope="module")
def v10_summary():
    return summarize(TRAINING, workers=1)


def _scores(summary):
    return {(r.system, r.benchmark): r.minutes for r in summary.training}


def test_every_published_v10_score_exactly(v10_summary):
    scores = _scores(v10_summary)
    assert set(scores) == set(PUBLISHED)
    for key, minutes in OFFICIAL.items():
        assert abs(scores[key] - minutes) <= 1e-9 * minutes, key
        assert round(scores[key], 2) == PUBLISHED[key], key


def test_v10_rules_are_stated(v10_summary):
    assert v10_summary.round.ruleset == "1.0.0"
    rules = " ".join(v10_summary.round.rules())
    assert "no RCP normalisation" in rules and "training_v1.0" in rules


def test_official_table_columns(v10_summary):
    rows = {row["system"]: row for row in v10_summary.training_rows}
    google = rows["tpu-v4-128"]
    assert (google["division"], google["availability"], google["submitter"]) == ("closed", "preview", "Google")
    assert google["accelerators_count"] == 64 and google["host_processors_count"] == 32
    assert rows["IPU-POD16"]["division"] == "open"
    assert rows["dgxa100_ngc21.05_mxnet"]["framework"] == "MXNet NVIDIA Release 21.05"
    assert rows["dgxa100_ngc21.05_mxnet"]["bert"] is None


def test_csv_and_json(v10_summary, tmp_path):
    [path] = write_csv(v10_summary, tmp_path / "table.csv")
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["division", "availability", "submitter", "system"]
    google = next(r for r in rows if r["system"] == "tpu-v4-128")
    assert float(google["bert"]) == OFFICIAL[("tpu-v4-128-TF", "bert")]
    data = json.loads(write_json(v10_summary, tmp_path / "s.json").read_text())
    assert data["ruleset"] == "1.0.0" and data["rules_applied"]
    details = {(d["system"], d["benchmark"]): d for d in data["training_details"]}
    mxnet_resnet = details[("dgxa100_ngc21.05_mxnet", "resnet")]
    assert mxnet_resnet["score"]["failed"] == 1 and len(mxnet_resnet["runs"]) == 5
def test_parallel_parsing_gives_the_same_scores():
    serial = _scores(summarize(TRAINING / "Google", ruleset="1.0.0", workers=1))
    parallel = _scores(summarize(TRAINING / "Google", ruleset="1.0.0", workers=2))
    assert serial == parallel


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return dst
def test_scaling_json_and_too_many_failures(tmp_path):
    org = _copy(TRAINING / "Google", tmp_path / "training_v1.0" / "Google")
    ssd = org / "results" / "tpu-v4-128-TF" / "ssd"
    (ssd / "scaling.json").write_text('{"scaling_factor": 2.0}')
    scores = _scores(summarize(org))
    assert scores[("tpu-v4-128-TF", "ssd")] == pytest.approx(2 * OFFICIAL[("tpu-v4-128-TF", "ssd")], rel=1e-12)
    # Two non-converged runs of five: no score, and the reason says so.
    for name in ("result_0.txt", "result_1.txt"):
        path = ssd / name
        path.write_text(path.read_text().replace('"status": "success"', '"status": "aborted"'))
    result = next(r for r in summarize(org).training if r.benchmark == "ssd")
    assert result.minutes is None
    assert any("did not converge" in note for note in result.notes)


def test_round_detection():
    assert round_from_path("/data/training_results_v1.1/NVIDIA").ruleset == "1.1.0"
    assert round_from_path("/x/training_v0.7").ruleset == "0.7.0"
    assert round_from_path("/x/y") is None
    assert round_from_time(1621118646492).ruleset == "1.0.0"       # May 2021
    assert round_from_time(1633000000000).ruleset == "1.1.0"       # Sep 2021
    assert round_from_time(1800000000000).ruleset == "1.1.0"       # after every known round: mlpace's
    assert round_for_ruleset("2.1.0").has_rcp_factor
    assert not round_for_ruleset("1.1.0").has_rcp_factor
    assert round_for_ruleset("1.0").drop("unet3d") == 4
    with pytest.raises(MlpaceError, match="unknown training ruleset"):
        round_for_ruleset("9.9.9")
def test_inference_rows():
    summary = summarize(INFERENCE)
    assert summary.round is None and not summary.training
    rows = {(r["submitter"], r["benchmark"], r["scenario"], r["system"]): r for r in summary.inference_rows}
    server = next(r for k, r in rows.items() if k[1] == "resnet50" and k[2] == "Server" and "OpenVINO" in k[3] or
                  (k[1] == "resnet50" and k[2] == "Server" and r["value"] == 3426.84))
    assert server["metric"] == "Scheduled samples per second" and server["valid"]
    assert server["accuracy_metric"] == "accuracy" and server["accuracy"] == 76.292
    offline = [r for r in summary.inference_rows if r["benchmark"] == "bert-99" and r["scenario"] == "Offline"]
    assert offline and offline[0]["value"] == 289.498     # found under a lowercase `offline` folder
    krai = [r for r in summary.inference_rows if r["submitter"] == "Krai" and r["scenario"] == "Offline"]
    assert krai and all("LoadGen ran SingleStream" in r["notes"] for r in krai)


def test_untrusted_tree(tmp_path):
    org = tmp_path / "Org"
    bench = org / "results" / "box" / "resnet"
    bench.mkdir(parents=True)
    (org / "systems").mkdir()
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    os.symlink(secret, bench / "result_0.txt")
    (bench / "result_1.txt").write_text(":::MLLOG {broken json\n")
    summary = summarize(org)
    problems = " ".join(f"{p} {m}" for p, m in summary.problems)
    assert "symbolic link to a place outside the tree" in problems
    assert "missing" in problems                                   # no systems/box.json
    [result] = summary.training
    assert len(result.runs) == 1 and result.runs[0].bad_lines == 1 and result.minutes is None


def test_not_a_submission(tmp_path):
    with pytest.raises(MlpaceError, match="no submission"):
        summarize(tmp_path)
    with pytest.raises(MlpaceError, match="does not exist"):
        summarize(tmp_path / "nope")


def _run_cli(*argv):
    """The CLI with only this area's verbs (other areas' modules may not exist yet)."""
    code = ("import sys, mlpace.cli as cli; cli.COMMAND_MODULES = ['mlpace.commands.submission']; "
            "sys.exit(cli.main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)
def test_cli_summarize(tmp_path):
    done = _run_cli("summarize", str(TRAINING / "Graphcore"), "--ruleset", "1.0.0",
                    "--csv", str(tmp_path / "t.csv"), "--json", str(tmp_path / "t.json"))
    assert done.returncode == 0, done.stderr
    assert "27.75" in done.stdout and "IPU-POD16" in done.stdout
    assert (tmp_path / "t.csv").read_text().count("\n") == 2
    bad = _run_cli("summarize", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_absurd_file_size_is_refused(tmp_path):
    from mlpace.io import SafeTree
    (tmp_path / "big.txt").write_bytes(b"x" * 4096)
    (tmp_path / "ok.txt").write_text("fine")
    tree = SafeTree(tmp_path, max_file_bytes=1024)
    assert [p.name for p in tree.files(tmp_path)] == ["ok.txt"]
    assert "over the" in tree.problems[0][1]
def test_summarize_never_applies_an_rcp_factor_of_its_own(tmp_path):
    """From v2.1 on the RCP checker computes a factor, but a published score is only ever
    multiplied by the scaling.json in the folder (see test_rcp_v31.py for the published table)."""
    org = tmp_path / "NVIDIA"
    _copy(TRAINING / "NVIDIA" / "results" / "dgxa100_ngc21.05_mxnet" / "resnet",
          org / "results" / "dgxa100_ngc21.05_mxnet" / "resnet")
    (org / "systems").mkdir()
    shutil.copyfile(TRAINING / "NVIDIA" / "systems" / "dgxa100_ngc21.05_mxnet.json",
                    org / "systems" / "dgxa100_ngc21.05_mxnet.json")
    key = ("dgxa100_ngc21.05_mxnet", "resnet")
    assert _scores(summarize(org, ruleset="1.1.0"))[key] == OFFICIAL[key]
    [result] = summarize(org, ruleset="2.1.0").training
    assert result.scaling_factor == 1.0 and result.minutes == OFFICIAL[key]
    assert not list(org.rglob("scaling.json"))          # summarize never writes into the tree


@pytest.mark.slow
def test_same_scores_as_the_official_summarizer_live(tmp_path):
    """Run the official tool on a copy of Google's v1.0 results and compare every score."""
    org = _copy(TRAINING / "Google", tmp_path / "Google")
    out = tmp_path / "official.csv"
    subprocess.run([sys.executable, "-m", "mlperf_logging.result_summarizer", str(org), "training",
                    "1.0.0", "--csv", str(out)], capture_output=True, timeout=300, check=True)
    with open(out) as handle:
        [official] = list(csv.DictReader(handle))
    ours = _scores(summarize(TRAINING / "Google", ruleset="1.0.0"))
    for benchmark in ("bert", "dlrm", "maskrcnn", "resnet", "ssd"):
        expected = float(official[benchmark])
        assert abs(ours[("tpu-v4-128-TF", benchmark)] - expected) <= 1e-9 * expected, benchmark
