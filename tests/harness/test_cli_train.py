"""The training CLI: list, bad input (one line, non-zero exit, nothing lost), results layout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mlpace.cli import main

from official_checkers import run_compliance_checker

TINY = ["--set", "train_per_class=20", "--set", "val_per_class=10", "--set", "batch_size=20"]


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_all_eight_and_what_is_implemented(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name in ("resnet", "ssd", "maskrcnn", "bert", "dlrm", "minigo", "rnnt", "unet3d"):
        assert name in out
    assert "0.7590" in out and "mini, reference" in out


@pytest.mark.parametrize("args, message", [
    (["train", "resnet50"], "unknown benchmark 'resnet50'"),
    (["train", "resnet", "--set", "no_such_key=1"], "unknown config key(s) no_such_key"),
    (["train", "resnet", "--set", "batch_size=many"], "expects int"),
    (["train", "resnet", "--set", "data_path=/nonexistent/imagenet"], "not found at /nonexistent/imagenet"),
    (["train", "resnet", "--scale", "reference"], "needs ImageNet"),
    (["train", "resnet", "--config", "/nonexistent.yaml"], "cannot read config file"),
    (["train", "resnet", "--runs", "0"], "--runs must be at least 1"),
    (["train", "resnet", "--device", "cuda:0"], "no CUDA device"),
])
def test_bad_input_is_one_clear_line(args, message, capsys, tmp_path):
    code, _, err = run_cli(args + ["--out", str(tmp_path / "out"), "--data-dir", str(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_malformed_data_dir(capsys, tmp_path):
    bad = tmp_path / "imagenet"
    (bad / "train").mkdir(parents=True)
    code, _, err = run_cli(["train", "resnet", "--set", f"data_path={bad}", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "holds no class folders" in err


def test_unwritable_output_dir(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        code, _, err = run_cli(["train", "resnet", "--out", str(locked / "x")], capsys)
        assert code == 2 and "cannot write results" in err
    finally:
        locked.chmod(0o700)


def test_output_dir_that_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("precious")
    code, _, err = run_cli(["train", "resnet", "--out", str(blocker)], capsys)
    assert code == 2 and "exists and is not a folder" in err and blocker.read_text() == "precious"


@pytest.mark.slow
def test_result_layout_score_and_existing_results_untouched(capsys, tmp_path):
    out = tmp_path / "results"
    args = ["train", "resnet", "--runs", "5", "--out", str(out), "--org", "Acme", "--system", "box1",
            "--seed", "7", "--max-epochs", "1", "--data-dir", str(tmp_path / "data"), "--quiet", *TINY]
    code, stdout, _ = run_cli(args, capsys)
    result_dir = out / "Acme" / "results" / "box1" / "resnet"
    logs = sorted(result_dir.glob("result_*.txt"))
    assert [p.name for p in logs] == [f"result_{i}.txt" for i in range(5)]
    assert not list(result_dir.glob(".*partial"))
    score = json.loads((result_dir / "score.json").read_text())
    assert len(score["runs"]) == 5 and len({r["seed"] for r in score["runs"]}) == 5
    assert "score" in stdout or "no score" in stdout
    system = json.loads((out / "Acme" / "systems" / "box1.json").read_text())
    assert system["submitter"] == "Acme" and system["division"] == "open"
    ok = subprocess.run([sys.executable, "-m", "mlperf_logging.system_desc_checker",
                         str(out / "Acme" / "systems" / "box1.json"), "training", "1.1.0"],
                        capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "passed" in (ok.stdout + ok.stderr).lower(), ok.stdout + ok.stderr
    before = {p: p.read_bytes() for p in logs}
    code, _, err = run_cli(args, capsys)   # again, into the same folder: refused
    assert code == 2 and "already holds 5 result files" in err
    assert {p: p.read_bytes() for p in logs} == before


def test_train_prints_seed_and_reproduce_command_first(capsys, tmp_path):
    """A drawn seed is printed before the run starts, with the command that repeats the run."""
    args = ["train", "resnet", "--out", str(tmp_path / "out"), "--quiet", "--max-epochs", "1",
            "--data-dir", str(tmp_path / "data"), "--no-store", *TINY]
    code, out, _ = run_cli(args, capsys)
    first = out.splitlines()[0]
    assert first.startswith("base seed ") and "; reproduce: mlpace train resnet --scale mini" in first
    seed = int(first.split()[2].rstrip(";"))
    score = json.loads(next((tmp_path / "out").rglob("score.json")).read_text())
    assert score["base_seed"] == seed and f"--seed {seed} " in first
    assert first.split("reproduce: ", 1)[1] == score["command"]


def test_system_description_overrides(capsys, tmp_path):
    overrides = tmp_path / "desc.json"
    overrides.write_text(json.dumps({"cooling": "air", "bogus_field": 1}))
    code, _, err = run_cli(["train", "resnet", "--system-desc", str(overrides), "--out", str(tmp_path)], capsys)
    assert code == 2 and "unknown system-description field(s) bogus_field" in err


@pytest.mark.slow
def test_sigterm_leaves_valid_aborted_log(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpace", "train", "resnet", "--out", str(out), "--system", "s",
         "--data-dir", str(tmp_path / "data"), "--quiet", "--seed", "1",
         "--set", "train_per_class=100", "--set", "val_per_class=10", "--set", "batch_size=10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = out / "mlpace" / "results" / "s" / "resnet" / ".result_0.txt.partial"
    deadline = time.time() + 240
    while time.time() < deadline and not (partial.exists() and "run_start" in partial.read_text()):
        time.sleep(0.2)
    assert partial.exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    log = out / "mlpace" / "results" / "s" / "resnet" / "result_0.txt"
    last = json.loads(log.read_text().splitlines()[-1].split(" ", 1)[1])
    assert last["key"] == "run_stop" and last["metadata"]["status"] == "aborted"
    ok, output = run_compliance_checker(log)
    assert ok, output


def test_suite_config_keys_name_their_benchmark(capsys, tmp_path):
    code, _, err = run_cli(["suite", "--set", "batch_size=8", "--out", str(tmp_path)], capsys)
    assert code == 2 and "name their benchmark (e.g. resnet.batch_size=...)" in err
    code, _, err = run_cli(["suite", "--only", "resnet,nope", "--out", str(tmp_path)], capsys)
    assert code == 2 and "nope not implemented" in err
    # a misspelt benchmark is not silently ignored
    code, _, err = run_cli(["suite", "--only", "resnet", "--set", "resnt.batch_size=8", "--out", str(tmp_path)], capsys)
    assert code == 2 and "config key resnt.batch_size names no benchmark of this suite (resnet)" in err


def test_suite_checks_every_config_before_the_first_run(capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["suite", "--only", "resnet,ssd", "--set", "ssd.no_such_key=1",
                                 "--out", str(out), "--data-dir", str(tmp_path / "data")], capsys)
    assert code == 2 and "unknown config key(s) no_such_key" in err
    assert not out.exists() and stdout == ""       # resnet never ran


@pytest.mark.slow
def test_suite_runs_table_and_store(capsys, tmp_path):
    args = ["suite", "--only", "resnet", "--out", str(tmp_path / "out"), "--quiet", "--max-epochs", "1",
            "--data-dir", str(tmp_path / "data"), "--set", "resnet.train_per_class=20",
            "--set", "resnet.val_per_class=10", "--set", "resnet.batch_size=20"]
    code, out, _ = run_cli(args + ["--seed", "11"], capsys)
    assert code == 1  # one epoch cannot reach the target: the suite says so in its exit code
    assert "mlpace suite" in out and "aborted (max epochs)" in out
    assert "recorded in the results store" in out
    lines = out.strip().splitlines()
    # the seed and the commands that repeat the suite and the run come first, the verdict last
    assert lines[0].startswith("suite base seed 11; reproduce: mlpace suite --scale mini --seed 11 --only resnet")
    assert lines[1].startswith("resnet: base seed 11; reproduce: mlpace train resnet --scale mini --runs 1 "
                               "--seed 11 ") and "--set batch_size=20" in lines[1]
    assert lines[-1].startswith("suite: 0 of 1 converged; not converged: resnet aborted (max epochs); wall ")
    assert ", CPU " in lines[-1]
    code, out, _ = run_cli(["results", "--benchmark", "resnet", "--format", "json"], capsys)
    assert code == 0 and "resnet" in out


def strict_json(path):
    """json.loads that refuses NaN and Infinity, which are not JSON (other readers reject them)."""
    def refuse(constant):
        raise ValueError(f"{path.name} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_result_files_are_strict_json(capsys, tmp_path):
    """rnnt's config holds clip_norm = inf (no clipping): mlpace_config.json says null, not Infinity."""
    args = ["train", "rnnt", "--out", str(tmp_path / "out"), "--quiet", "--max-epochs", "1",
            "--data-dir", str(tmp_path / "data"), "--no-store", "--set", "train_utterances=8",
            "--set", "eval_utterances=2", "--set", "batch_size=8"]
    code, _, err = run_cli(args, capsys)
    assert code in (0, 1), err
    config = strict_json(next((tmp_path / "out").rglob("mlpace_config.json")))
    assert config["clip_norm"] is None and config["batch_size"] == 8
    strict_json(next((tmp_path / "out").rglob("score.json")))
    for system in (tmp_path / "out").rglob("systems/*.json"):
        strict_json(system)
