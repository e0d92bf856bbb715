"""`mlpace suite --workers N`: benchmarks side by side in single-thread worker processes, the
same result tree, table and verdict as in turn; a stop from outside stops every running one cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from mlpace.cli import main
from mlpace.training.suite import LONGEST_FIRST, default_workers

from official_checkers import run_compliance_checker

TINY = ["--set", "resnet.train_per_class=20", "--set", "resnet.val_per_class=10", "--set", "resnet.batch_size=20",
        "--set", "dlrm.mini_rows_per_day=2000", "--set", "dlrm.mini_eval_rows=500"]


def test_default_workers_one_per_core_on_cpu_and_one_on_cuda(monkeypatch):
    monkeypatch.setattr("mlpace.training.suite.usable_cpus", lambda: 2)
    assert default_workers(8, "cpu") == 2
    assert default_workers(1, "cpu") == 1          # never more workers than benchmarks
    assert default_workers(8, "cuda") == 1         # one GPU: the benchmarks would queue for it
    monkeypatch.setattr("mlpace.training.suite.usable_cpus", lambda: 16)
    assert default_workers(8, "cpu") == 8


def test_every_benchmark_has_its_place_in_the_longest_first_order():
    from mlpace.benchmarks import IMPLEMENTED
    assert sorted(LONGEST_FIRST) == sorted(IMPLEMENTED)


def test_workers_must_be_a_positive_count(capsys, tmp_path):
    code = main(["suite", "--only", "resnet", "--workers", "0", "--out", str(tmp_path / "out")])
    assert code == 2 and "--workers must be a whole number from 1 to 256" in capsys.readouterr().err


@pytest.mark.slow
def test_side_by_side_suite_writes_the_same_tree_table_and_verdict(capsys, tmp_path):
    out = tmp_path / "out"
    code = main(["suite", "--only", "resnet,dlrm", "--workers", "2", "--max-epochs", "1", "--seed", "5",
                 "--out", str(out), "--system", "s", "--data-dir", str(tmp_path / "data"), "--no-store", *TINY])
    stdout = capsys.readouterr().out
    lines = stdout.strip().splitlines()
    assert code == 1                               # one tiny epoch reaches neither target
    assert lines[0].startswith("suite base seed 5; reproduce: mlpace suite --scale mini --seed 5 "
                               "--only resnet,dlrm") and "--workers 2" in lines[0]
    for name in ("resnet", "dlrm"):
        assert any(line.startswith(f"{name}: base seed 5; reproduce: mlpace train {name} ") for line in lines)
        assert any(line.startswith(f"{name}: aborted (max epochs) after 1 epochs") for line in lines)
        log = out / "mlpace" / "results" / "s" / name / "result_0.txt"
        score = json.loads((log.parent / "score.json").read_text())
        assert score["runs"][0]["status"] == "aborted" and score["runs"][0]["cpu_seconds"] > 0
        ok, output = run_compliance_checker(log)
        assert ok, output
    assert "mlpace suite" in stdout
    assert lines[-1].startswith("suite: 0 of 2 converged; not converged: resnet aborted (max epochs), "
                                "dlrm aborted (max epochs); wall ")


@pytest.mark.slow
def test_sigterm_stops_every_running_benchmark_with_a_valid_aborted_log(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpace", "suite", "--only", "resnet,ssd", "--workers", "2", "--out", str(out),
         "--system", "s", "--data-dir", str(tmp_path / "data"), "--quiet", "--seed", "1", "--no-store",
         "--max-epochs", "1000",       # neither can reach its target on such tiny data: both still run
         "--set", "resnet.train_per_class=20", "--set", "resnet.val_per_class=10", "--set", "resnet.batch_size=20",
         "--set", "ssd.train_images=32", "--set", "ssd.val_images=8", "--set", "ssd.batch_size=16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = out / "mlpace" / "results" / "s"
    partials = [folder / name / ".result_0.txt.partial" for name in ("resnet", "ssd")]
    deadline = time.time() + 300
    while time.time() < deadline and not all(p.exists() and "run_start" in p.read_text() for p in partials):
        time.sleep(0.2)
    assert all(p.exists() for p in partials), proc.communicate()
    proc.send_signal(signal.SIGTERM)                 # to the suite only: it stops its workers
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert "interrupted in " in stdout.strip().splitlines()[-1]
    for name in ("resnet", "ssd"):
        log = folder / name / "result_0.txt"
        last = json.loads(log.read_text().splitlines()[-1].split(" ", 1)[1])
        assert last["key"] == "run_stop" and last["metadata"]["status"] == "aborted"
        ok, output = run_compliance_checker(log)
        assert ok, output


@pytest.mark.slow
def test_an_error_in_one_worker_stops_the_suite_with_one_clear_line(capsys, tmp_path):
    code = main(["suite", "--only", "resnet,dlrm,ssd", "--workers", "2", "--max-epochs", "1", "--out", str(tmp_path / "out"),
                 "--data-dir", str(tmp_path / "data"), "--no-store", "--quiet",
                 "--set", "resnet.data_path=/nonexistent/imagenet", *TINY[6:], "--set", "ssd.train_images=32",
                 "--set", "ssd.val_images=8"])
    err = capsys.readouterr().err
    assert code == 2 and "not found at /nonexistent/imagenet" in err and "Traceback" not in err
