"""Parsers of training result files and LoadGen outputs, on real published MLPerf files."""

from pathlib import Path

import pytest

from mlpace.errors import MlpaceError
from mlpace.submission.loadgen_log import (canonical_scenario, parse_accuracy_file,
                                           parse_detail_file, parse_summary_file,
                                           parse_summary_text)
from mlpace.submission.training_log import parse_mllog_lines, parse_result_file, parse_result_text

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
TRAINING = FIXTURES / "training_v1.0"
INFERENCE = FIXTURES / "inference_v1.1"
def test_real_nvidia_log_with_shell_noise():
    run = parse_result_file(TRAINING / "NVIDIA/results/dgxa100_ngc21.05_mxnet/resnet/result_0.txt")
    assert (run.benchmark, run.submitter, run.division, run.availability) == ("resnet", "NVIDIA", "closed", "onprem")
    assert run.platform == "1xNVIDIA DGX A100"
    assert run.status == "success" and run.converged
    assert run.minutes == (run.run_stop_ms - run.run_start_ms) / 60 / 1000
    assert 20 < run.minutes < 40
    assert run.global_batch_size and run.seed is not None
    assert run.evals and all(len(e) == 3 for e in run.evals)
def test_aborted_run_has_no_minutes():
    run = parse_result_file(TRAINING / "NVIDIA/results/dgxa100_ngc21.05_mxnet/resnet/result_1.txt")
    assert run.status == "aborted"
    assert run.minutes is None and not run.converged
    assert any("did not converge" in note for note in run.notes)
def test_maskrcnn_eval_values_are_dicts():
    run = parse_result_file(TRAINING / "NVIDIA/results/dgxa100_ngc21.05_pytorch/maskrcnn/result_0.txt")
    epoch, time_ms, value = run.evals[0]
    assert isinstance(value, dict) and set(value) == {"BBOX", "SEGM"}
    assert epoch == 1 and time_ms > run.run_start_ms


def test_truncated_log_and_noise():
    text = "\n".join([
        "+ srun something",
        'rank0: :::MLLOG {"namespace": "", "time_ms": 1000, "event_type": "INTERVAL_START", "key": "run_start", "value": null, "metadata": {}}',
        'garbage :::MLLOG {"time_ms": 2000, "key": "eval_accuracy", "value": 0.5, "metadata": {"epoch_num": 1}}',
        ':::MLLOG {"time_ms": 3000, "key": "eval_acc',   # cut in half by a killed job
    ])
    run = parse_result_text(text)
    assert run.run_start_ms == 1000 and run.status is None and run.minutes is None
    assert run.evals == [(1, 2000.0, 0.5)]
    assert run.bad_lines == 1
    assert any("truncated" in n for n in run.notes)
    assert len(parse_mllog_lines(text)) == 2


def test_v06_format_in_seconds():
    text = "\n".join([
        ':::MLL 1558640213.500 run_start: {"value": null, "metadata": {"file": "a.py"}}',
        ':::MLL 1558640273.500 run_stop: {"value": null, "metadata": {"status": "success"}}',
    ])
    run = parse_result_text(text)
    assert run.status == "success"
    assert run.minutes == pytest.approx(1.0)


def test_unreadable_and_huge_files(tmp_path):
    with pytest.raises(MlpaceError, match="does not exist"):
        parse_result_file(tmp_path / "missing.txt")
    with pytest.raises(MlpaceError, match="folder"):
        parse_result_file(tmp_path)
    from mlpace.io import read_text_limited
    big = tmp_path / "big.txt"
    big.write_text("x" * 2048)
    with pytest.raises(MlpaceError, match="refusing"):
        read_text_limited(big, limit=1024)
def test_loadgen_v11_server_summary():
    summary = parse_summary_file(
        INFERENCE / "closed/Intel/results/1-node-2S-ICX-OpenVINO-INT8/resnet50/Server/performance/run_1/mlperf_log_summary.txt")
    assert summary["scenario"] == "Server" and summary["mode"] == "PerformanceOnly"
    assert summary["metric"] == "Scheduled samples per second" and summary["value"] == 3426.84
    assert summary["valid"] and summary["min_duration_satisfied"] and summary["min_queries_satisfied"]
    assert summary["performance_constraints_satisfied"] is True
    assert summary["latency_percentiles_ns"][99.0] == 14031886
    assert summary["settings"]["min_duration (ms)"] == 600000
    assert summary["settings"]["target_latency (ns)"] == 15000000
    assert summary["errors"] is False
def test_loadgen_lowercase_folder_and_warning_line():
    path = INFERENCE / "closed/Intel/results/1-node-2S-ICX-PyTorch-INT8/resnet50/offline/performance/run_1/mlperf_log_summary.txt"
    summary = parse_summary_file(path)
    assert summary["scenario"] == "Offline" == canonical_scenario(path.parts[-4])
    assert summary["metric"] == "Samples per second" and summary["value"] == 4103.45
    assert summary["warnings"] is True


def test_current_loadgen_invalid_summary():
    text = """================================================
MLPerf Results Summary
================================================
SUT name : PySUT
Scenario : Offline
Mode     : PerformanceOnly
Samples per second: 795039
Result is : INVALID
  Min duration satisfied : NO
  Min queries satisfied : Yes
  Early stopping satisfied: Yes
Recommendations:
 * Increase expected QPS so the loadgen pre-generates a larger (coalesced) query.
"""
    summary = parse_summary_text(text)
    assert summary["value"] == 795039 and not summary["valid"]
    assert summary["min_duration_satisfied"] is False and summary["early_stopping_satisfied"] is True
    assert "Recommendations" not in summary["stats"]
def test_accuracy_reports_of_each_benchmark():
    closed = INFERENCE / "closed"
    cases = {
        "Intel/results/1-node-2S-ICX-OpenVINO-INT8/resnet50/Server": ("accuracy", 76.292),
        "Alibaba/results/A10x1_TRT/ssd-mobilenet/SingleStream": ("mAP", 22.914),
        "Intel/results/1-node-2S-ICX-PyTorch-INT8/bert-99/offline": ("f1", 90.57455168276378),
        "Intel/results/1-node-2S-ICX-PyTorch-INT8/dlrm-99/server": ("AUC", 80.21599672162321),
        "Intel/results/1-node-4S-CPX-PyTorch-MIX/rnnt/Offline": ("WER", 8.252722722045593),
        "Intel/results/1-node-2S-ICX-OpenVINO-INT8/3d-unet-99/Offline": ("DICE", 0.8559),
    }
    for folder, (metric, value) in cases.items():
        report = parse_accuracy_file(closed / folder / "accuracy" / "accuracy.txt")
        assert report["metrics"][metric] == value, folder
        assert report["hash"]


def test_detail_log_errors(tmp_path):
    detail = tmp_path / "mlperf_log_detail.txt"
    detail.write_text(
        ':::MLLOG {"key": "result_validity", "value": "INVALID", "time_ms": 1.0, "metadata": {"is_error": false, "is_warning": false}}\n'
        ':::MLLOG {"key": "error_runtime", "value": "SUT crashed", "time_ms": 2.0, "metadata": {"is_error": true, "is_warning": false}}\n')
    parsed = parse_detail_file(detail)
    assert parsed["values"]["result_validity"] == "INVALID"
    assert parsed["errors"] == ["error_runtime: SUT crashed"]
