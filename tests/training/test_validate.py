"""`mlpace validate`: a few steps on tiny data at both scales, then the official checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpace import benchmarks
from mlpace.cli import main
from mlpace.training.validate import Validation, _checker, validate_scale


def test_validate_dlrm_passes_at_both_scales(capsys):
    assert main(["validate", "dlrm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = [line for line in lines if line.startswith(("ok", "FAIL"))]
    assert len(checks) == 6 and all(line.startswith("ok") for line in checks), lines
    assert any("reference" in line and "closed rules" in line for line in checks), lines
    assert lines[-1] == "dlrm: valid (6 checks passed)"


def test_a_log_missing_a_closed_rule_key_fails_validation(tmp_path):
    checks = validate_scale("dlrm", "reference", tmp_path)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    log = tmp_path / "result_reference.txt"
    log.write_text("".join(line for line in log.read_text().splitlines(keepends=True)
                           if '"key": "global_batch_size"' not in line))
    failed = [c for c in _checker(log, "reference") if not c.ok]
    assert failed and any("global_batch_size" in c.detail for c in failed), [c.line() for c in failed]


def test_validate_exits_1_when_the_benchmark_breaks(capsys, monkeypatch):
    # A benchmark change that breaks model building (an embedding size the bottom MLP cannot
    # end in): the training check fails, the verdict says so, the exit is 1.
    monkeypatch.setattr("mlpace.benchmarks.dlrm.tiny_config", lambda scale, root: {
        "mini_rows_per_day": 2000, "mini_eval_rows": 500, "embedding_dim": 7})
    assert main(["validate", "dlrm", "--scale", "mini"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("FAIL") and "training steps" in lines[-2], lines
    assert lines[-1] == "dlrm: NOT valid (1 of 2 checks failed)"


def test_a_benchmark_without_tiny_data_is_one_error_line(capsys, monkeypatch):
    monkeypatch.delattr("mlpace.benchmarks.minigo.tiny_config")
    assert main(["validate", "minigo", "--scale", "mini"]) == 2
    assert capsys.readouterr().err.startswith("error: benchmark 'minigo' has no tiny data")


def test_every_benchmark_has_tiny_data_for_validation():
    import importlib
    missing = [b for b in benchmarks.IMPLEMENTED
               if not hasattr(importlib.import_module(f"mlpace.benchmarks.{b}"), "tiny_config")]
    assert missing == []


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["rnnt", "unet3d", "minigo"])
def test_validate_passes_at_both_scales(benchmark, capsys):
    assert main(["validate", benchmark]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = [line for line in lines if line.startswith(("ok", "FAIL"))]
    assert len(checks) == 6 and all(line.startswith("ok") for line in checks), lines
    assert any("mini" in line and "open rules: pass" in line for line in checks), lines
    assert any("reference" in line and "closed rules" in line for line in checks), lines
    assert lines[-1] == f"{benchmark}: valid (6 checks passed)"


def _eval_values(log: Path) -> list[float]:
    import json
    return [json.loads(line.split(":::MLLOG", 1)[1])["value"] for line in log.read_text().splitlines()
            if '"key": "eval_accuracy"' in line]


def test_validate_fails_when_the_checker_rejects_the_log(tmp_path, monkeypatch):
    # Two steps leave the mini RNN-T untrained: it transcribes nothing, WER 1.0, and the open
    # rules want one evaluation below 1.0. Validation must say so, not pass.
    monkeypatch.setattr("mlpace.benchmarks.rnnt.tiny_config", lambda scale, root: {
        "train_utterances": 8, "eval_utterances": 2, "batch_size": 4})
    checks = validate_scale("rnnt", "mini", tmp_path)
    assert min(_eval_values(tmp_path / "result_mini.txt")) >= 1.0
    assert [c.name for c in checks if not c.ok] == ["official compliance checker"], [c.line() for c in checks]
    assert "eval_accuracy" in checks[-1].detail and "< 1.0" in checks[-1].detail
    assert not Validation("rnnt", checks).passed


@pytest.mark.slow
def test_only_what_tiny_data_cannot_meet_is_set_aside(tmp_path):
    """At reference scale the closed rules' quality target and data-set sizes are excused (and
    named); a closed-rule value the code got wrong is not."""
    checks = validate_scale("rnnt", "reference", tmp_path)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert "eval_samples (tiny data), the quality target" in checks[-1].detail
    log = tmp_path / "result_reference.txt"
    text = log.read_text()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(text.replace('"key": "data_speed_perturbaton_min", "value": 0.85',
                                  '"key": "data_speed_perturbaton_min", "value": 0.9'))
    failed = [c for c in _checker(wrong, "reference") if not c.ok]
    assert failed and all("data_speed_perturbaton_min" in c.detail for c in failed), [c.line() for c in failed]
    wrong.write_text("".join(line for line in text.splitlines(keepends=True)
                             if '"key": "weights_initialization"' not in line))
    assert any("weights_initialization" in c.detail for c in _checker(wrong, "reference") if not c.ok)


def test_the_registry_lists_every_benchmark_folder():
    folders = {p.parent.name for p in Path(benchmarks.__file__).parent.glob("*/__init__.py")}
    assert set(benchmarks.IMPLEMENTED) == folders
    assert benchmarks.implemented_scales("not-a-benchmark") == ()


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="a GPU is there (the GPU path is checked by hand: BENCHMARKS.md)")
def test_validate_on_a_gpu_that_is_not_there_is_one_error_line(capsys):
    assert main(["validate", "dlrm", "--scale", "mini", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device cuda: no CUDA device is available on this machine"]
