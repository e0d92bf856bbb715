"""`mlpace check`: official checkers in plain words, mlpace's inference checks, exit codes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlpace.submission.check import FAIL, PASS, WARN, _is_known_drift, check, plain_compliance_message

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return dst


def _small_org(tmp_path, system="dgxa100_ngc21.05_mxnet", benchmark="resnet", org="NVIDIA"):
    """One org with one system and one benchmark copied from the fixtures."""
    src = TRAINING / org
    dst = tmp_path / "training_v1.0" / org
    _copy(src / "results" / system / benchmark, dst / "results" / system / benchmark)
    (dst / "systems").mkdir()
    shutil.copyfile(src / "systems" / f"{system}.json", dst / "systems" / f"{system}.json")
    return dst


def _levels(report, rule_part):
    return [f.level for f in report.findings if rule_part in f.rule]


def test_plain_words():
    assert plain_compliance_message("Required AT_LEAST_ONE occurrence of 'seed' but found 0") == \
        "the log needs at least one 'seed' line; it has 0"
    assert "quality target" in plain_compliance_message(
        "Failed checks for eval_accuracy : v['value'] >= 0.7590 and v['value'] < 1.0")
    message = ("CHECK for 'opt_base_learning_rate' failed in line 12:\n:::MLLOG {...}\n"
               "failed test: v['value'] > 0\ncurrent context[s]={}")
    assert plain_compliance_message(message) == "line 12 ('opt_base_learning_rate') breaks the rule `v['value'] > 0`"


def test_a_failed_check_is_named_by_its_rule_not_by_the_state_dump():
    # The closed rnnt rules keep `initialized_tensors` in their state, so every failure under
    # them dumps it; an eval_samples failure was reported (and excused as 1.1.0 drift) as a
    # weights_initialization one.
    message = ("CHECK for 'eval_samples' failed in line 38:\n:::MLLOG {...}\nfailed test:  v['value'] == 2703 \n"
               "current context[s]={\n  \"initialized_tensors\": []\n}")
    assert plain_compliance_message(message) == "line 38 ('eval_samples') breaks the rule `v['value'] == 2703`"
    assert not _is_known_drift("1.1.0", message)
    tensors = "failed test: sorted(s['initialized_tensors']) == sorted(['pre_rnn'])\ncurrent context[s]={}"
    assert _is_known_drift("1.1.0", tensors) and "weights_initialization" in plain_compliance_message(tensors)
def test_published_resnet_with_one_aborted_run(tmp_path):
    report = check(_small_org(tmp_path), workers=1)
    compliance = [f for f in report.findings if f.rule.startswith("compliance")]
    assert len(compliance) == 5
    aborted = [f for f in compliance if f.level != PASS]
    # One run did not reach the target: the official package checker accepts one such file.
    assert [Path(f.path).name for f in aborted] == ["result_1.txt"]
    assert aborted[0].level == WARN and "quality target" in aborted[0].reason
    assert _levels(report, "run count") == [PASS]
    assert _levels(report, "RCP") == [PASS]
    assert _levels(report, "system description (official)") == [PASS]
    assert report.ok and report.to_json()["passed"]
def test_two_failing_runs_fail_the_result(tmp_path):
    org = _small_org(tmp_path)
    path = org / "results" / "dgxa100_ngc21.05_mxnet" / "resnet" / "result_0.txt"
    path.write_text(path.read_text().replace('"status": "success"', '"status": "aborted"'))
    (org / "results" / "dgxa100_ngc21.05_mxnet" / "resnet" / "result_4.txt").unlink()
    report = check(org, workers=1)
    assert not report.ok
    assert FAIL in _levels(report, "run count")
    assert FAIL in _levels(report, "olympic")
def test_v11_drift_is_a_warning(tmp_path):
    """Today's mlperf-logging rejects the weights_initialization lists that were warnings in v1.1."""
    org = _small_org(tmp_path, benchmark="ssd")
    report = check(org, ruleset="1.1.0", workers=1)
    compliance = [f for f in report.findings if f.rule.startswith("compliance")]
    assert compliance and all(f.level == WARN for f in compliance)
    assert all("today's mlperf-logging makes it an error" in f.reason for f in compliance)
def test_cli_check_exit_codes(tmp_path):
    code = ("import sys, mlpace.cli as cli; cli.COMMAND_MODULES = ['mlpace.commands.submission']; "
            "sys.exit(cli.main(sys.argv[1:]))")
    run = lambda *a: subprocess.run([sys.executable, "-c", code, *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    done = run("check", str(tmp_path / "missing"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    if INFERENCE.is_dir():
        closed_intel = _copy(INFERENCE / "closed" / "Alibaba", tmp_path / "closed" / "Alibaba")
        # a partial copy of a published tree (no detail logs): the official checker rejects it too
        done = run("check", str(closed_intel.parent.parent), "--json", str(tmp_path / "r.json"))
        assert done.returncode == 1, done.stdout
        assert "FAILED" in done.stdout and (tmp_path / "r.json").exists()


def test_check_survives_a_hostile_tree(tmp_path):
    org = tmp_path / "Org"
    bench = org / "results" / "box" / "resnet"
    bench.mkdir(parents=True)
    (org / "systems").mkdir()
    (org / "systems" / "box.json").write_text("{not json")
    (bench / "result_0.txt").write_bytes(bytes(range(256)) * 8)          # binary garbage
    (bench / "result_1.txt").write_text(':::MLLOG {"key": "run_start", "time_ms": "x", "metadata": 5}\n')
    os.symlink("/etc/passwd", bench / "result_2.txt")
    os.symlink("../../..", bench / "loop")
    report = check(org, workers=1)
    reasons = {(Path(f.path).name, f.rule): f.reason for f in report.findings if f.level == FAIL}
    assert "outside the tree" in reasons[("result_2.txt", "tree")]
    assert "can loop" in reasons[("loop", "tree")]
    assert "not valid JSON" in reasons[("box.json", "system description")]
    assert "resnet needs 5" in reasons[("resnet", "run count")]
    compliance = [f for f in report.findings if f.rule.startswith("compliance")]
    assert len(compliance) == 2 and all(f.level != PASS for f in compliance)
