"""resnet50 at mini scale on a tiny generated data set: cache, backends, CLI, accuracy target."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace import cli  # noqa: E402
from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.resnet import serve as resnet50  # noqa: E402
from mlpace.training.models import ModelCache  # noqa: E402
from mlpace.inference.task import score_directly  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"train_per_class": 12, "val_per_class": 4, "batch_size": 30}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("infer-data")
    # trains the tiny model and caches it
    resnet50.build(BuildOptions(data_dir=path, threads=1, train_overrides=TINY, train_epochs=1))
    return path


def test_the_mini_model_is_trained_once_then_cached(data_dir, monkeypatch):
    monkeypatch.setattr(ModelCache, "_train", lambda self: pytest.fail("retrained a cached model"))
    task = resnet50.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))
    assert task.total == 40
    assert task.notes["epochs"] == 1                            # how training ended is kept
    # served with the training code's own preprocessing: the same score as its evaluation
    assert task.reference_score == pytest.approx(task.notes["quality"])
    meta = json.loads(next((data_dir / "inference-models").glob("*.json")).read_text())
    assert meta["fp32_scores"]["40"] == pytest.approx(task.reference_score)


def test_sut_outputs_score_like_the_fp32_model(data_dir):
    task = resnet50.build(BuildOptions(data_dir=data_dir, threads=1, limit=24, train_overrides=TINY,
                                       train_epochs=1))
    assert task.total == 24
    assert score_directly(task, batch=5) == pytest.approx(task.reference_score)
    assert task.passes(task.reference_score, 0.99)
    assert not task.passes(task.reference_score * 0.98 - 1e-9, 0.99)


def test_onnxruntime_backend_agrees_with_torch(data_dir):
    torch_task = resnet50.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))
    onnx_task = resnet50.build(BuildOptions(data_dir=data_dir, threads=1, backend="onnxruntime",
                                            train_overrides=TINY, train_epochs=1))
    samples = [torch_task.load(i) for i in range(16)]
    a = np.concatenate(torch_task.predict(samples))
    b = np.concatenate(onnx_task.predict(samples))
    assert (a == b).mean() >= 0.9          # argmax may flip on near-ties between float kernels


@pytest.mark.slow
def test_cli_quick_offline_and_accuracy_in_official_layout(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    weights = next((data_dir / "inference-models").glob("resnet50-mini-*.pt"))   # the tiny model
    code = cli.main(["infer", "resnet50", "--quick", "--scenario", "Offline", "--scenario", "SingleStream",
                    "--mode", "both", "--data-dir", str(data_dir), "--threads", "1", "--out", str(out),
                    "--system", "tiny", "--limit", "40", "--checkpoint", str(weights),
                    *[f"--set={key}={value}" for key, value in TINY.items()]])   # the tiny data set
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "quick run" in printed
    records = json.loads((out / "mlpace_infer_summary.json").read_text())
    assert [(r["scenario"], r["mode"]) for r in records] == [    # in the order asked
        ("Offline", "performance"), ("Offline", "accuracy"),
        ("SingleStream", "performance"), ("SingleStream", "accuracy")]
    accuracy = [r for r in records if r["mode"] == "accuracy"]
    assert all(r["result"] == "PASS" for r in accuracy)
    base = out / "open/mlpace/results/tiny/resnet50"
    # what the results store files the result under
    written = json.loads((base / "Offline/performance/run_1/mlpace_summary.json").read_text())
    assert (written["scale"], written["division"], written["round"]) == ("mini", "open", "v1.1")
    # `--backend auto` (the default) served the exported graph, and the record says which.
    assert written["build"]["backend"] == "onnxruntime"
    assert "--backend onnxruntime" in written["command"]
    assert (base / "Offline/accuracy/accuracy.txt").is_file()
    assert (base / "SingleStream/performance/run_1/mlperf_log_detail.txt").is_file()
    assert (out / "open/mlpace/systems/tiny.json").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["infer", "nosuchmodel", "--out", str(tmp_path)]) == 2
    assert "unknown inference benchmark 'nosuchmodel'" in capsys.readouterr().err
    assert cli.main(["infer", "resnet50", "--all", "--out", str(tmp_path)]) == 2
    assert "name one benchmark, or pass --all" in capsys.readouterr().err
    assert cli.main(["infer", "resnet50", "--accuracy-target", "99.9", "--out", str(tmp_path)]) == 2
    assert "accuracy targets 99 % only" in capsys.readouterr().err
    assert not (tmp_path / "mlpace_infer_summary.json").exists()


def test_reference_scale_needs_a_checkpoint(tmp_path):
    from mlpace.errors import MlpaceError
    with pytest.raises(MlpaceError, match="needs --checkpoint"):
        resnet50.build(BuildOptions(scale="reference", data_dir=tmp_path))


def test_auto_backend_is_onnxruntime_for_fp32_on_a_cpu_where_the_model_exports():
    from dataclasses import replace

    from mlpace.inference import models
    image, rnnt = models.get_binding("resnet50"), models.get_binding("rnnt")
    auto = BuildOptions(backend="auto")
    assert image.backend_for(auto) == "onnxruntime"
    assert rnnt.torch_only and rnnt.backend_for(auto) == "torch"      # its decoding loop does not export
    assert image.backend_for(replace(auto, device="cuda")) == "torch"
    assert image.backend_for(replace(auto, device="cuda", precision="bf16")) == "torch"
    assert image.backend_for(replace(auto, backend="torch-compile")) == "torch-compile"
