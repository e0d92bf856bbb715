"""dlrm at mini scale on tiny generated click logs: probabilities, AUC, both backends."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.dlrm import serve as dlrm  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"mini_rows_per_day": 2000, "mini_eval_rows": 600, "batch_size": 256}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("criteo")


@pytest.fixture(scope="module")
def task(data_dir):
    torch.set_num_threads(1)
    # trains the tiny model and caches it
    return dlrm.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))


def test_outputs_are_click_probabilities_scored_by_auc(task):
    assert task.total == 600 and task.metric == "AUC" and task.targets == (0.99, 0.999)
    out = task.predict([task.load(i) for i in range(5)])
    assert all(o.dtype == np.float32 and 0.0 < o[0] < 1.0 for o in out)
    assert task.reference_score == pytest.approx(task.notes["quality"])   # the training evaluation's AUC


def test_onnxruntime_matches_torch(task, data_dir):
    torch_task = task
    onnx_task = dlrm.build(BuildOptions(data_dir=data_dir, threads=1, backend="onnxruntime",
                                        train_overrides=TINY, train_epochs=1))
    samples = [torch_task.load(i) for i in range(32)]
    np.testing.assert_allclose(np.concatenate(torch_task.predict(samples)),
                               np.concatenate(onnx_task.predict(samples)), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_server_and_accuracy_runs(task, tmp_path):
    from dataclasses import replace

    from mlpace.inference.task import score_directly
    task = replace(task, total=200)
    task.reference_score = score_directly(task)          # the FP32 score of these 200 samples
    options = RunOptions(out=tmp_path, quick=True, system="tiny", user_settings={"target_qps": 200})
    perf = run_test(task, "Server", "performance", options)
    assert perf["error"] is None and perf["metric"] == "Completed samples per second"
    accuracy = run_test(task, "Offline", "accuracy", options)
    assert accuracy["result"] == "PASS" and accuracy["benchmark"] == "dlrm-99"
    assert accuracy["accuracy"]["score"] == pytest.approx(task.reference_score)


def test_cached_model_key_follows_the_training_data_version(tmp_path, monkeypatch):
    """A new mini-data generator version must train a new model, not serve stale weights."""
    from mlpace.benchmarks.dlrm import data as click_data
    from mlpace.training.models import ModelCache
    small = {"mini_rows_per_day": 400, "mini_eval_rows": 100}
    first = ModelCache("dlrm-mini", "dlrm", tmp_path, small).key
    assert ModelCache("dlrm-mini", "dlrm", tmp_path, small).key == first
    monkeypatch.setattr(click_data, "MINI_VERSION", click_data.MINI_VERSION + 1)
    assert ModelCache("dlrm-mini", "dlrm", tmp_path, small).key != first
