"""dlrm at mini scale on tiny generated click logs: user queries, probabilities, AUC, both backends."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.dlrm import serve as dlrm  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"mini_rows_per_day": 2000, "mini_eval_rows": 3000, "batch_size": 256}
# The first query ends of mlcommons' reference trace (tools/dist_trace_verification.txt).
REFERENCE_TRACE_ENDS = [200, 400, 600, 800, 1300, 2000, 2200, 2300, 2400, 2900, 3200, 3400, 3500,
                        3800, 3900, 4200, 4900, 5200, 5400, 5500, 5900, 6100, 6600, 6800]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("criteo")


@pytest.fixture(scope="module")
def task(data_dir):
    torch.set_num_threads(1)
    # trains the tiny model and caches it
    return dlrm.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))


def test_queries_are_drawn_as_the_reference_draws_them():
    offsets = dlrm.query_offsets(6800)
    assert list(offsets) == [0] + REFERENCE_TRACE_ENDS
    cut = dlrm.query_offsets(1000)                     # the last query ends with the lines
    assert list(cut) == [0, 200, 400, 600, 800, 1000]
    assert list(dlrm.query_offsets(0)) == [0]


def test_a_sample_is_a_user_query_answered_line_by_line(task):
    offsets = dlrm.query_offsets(3000)
    assert task.total == len(offsets) - 1 and task.metric == "AUC" and task.targets == (0.99, 0.999)
    out = task.predict([task.load(i) for i in range(5)])
    assert [len(o) for o in out] == list(np.diff(offsets[:6]))
    assert all(o.dtype == np.float32 and np.all((0.0 < o) & (o < 1.0)) for o in out)
    # one query alone and in a batch get the same answers: the batch is split where it was joined
    np.testing.assert_allclose(task.predict([task.load(2)])[0], out[2], rtol=1e-5)
    assert task.reference_score == pytest.approx(task.notes["quality"])   # the training evaluation's AUC


def test_auc_counts_every_line_of_the_answered_queries(task):
    outputs = {i: out for i, out in enumerate(task.predict([task.load(i) for i in range(task.total)]))}
    assert task.score(outputs) == pytest.approx(task.notes["quality"])
    truncated = dict(outputs)
    truncated[0] = outputs[0][:10]                     # a short answer is not an answer
    assert task.score(truncated) != pytest.approx(task.score(outputs))


def test_onnxruntime_matches_torch(task, data_dir):
    torch_task = task
    onnx_task = dlrm.build(BuildOptions(data_dir=data_dir, threads=1, backend="onnxruntime",
                                        train_overrides=TINY, train_epochs=1))
    samples = [torch_task.load(i) for i in range(4)]      # about 1,000 lines
    np.testing.assert_allclose(np.concatenate(torch_task.predict(samples)),
                               np.concatenate(onnx_task.predict(samples)), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_server_and_accuracy_runs(task, tmp_path):
    from dataclasses import replace

    from mlpace.inference.task import score_directly
    task = replace(task, total=6)
    task.reference_score = score_directly(task)          # the FP32 score of these 6 queries
    options = RunOptions(out=tmp_path, quick=True, system="tiny", user_settings={"target_qps": 50})
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
