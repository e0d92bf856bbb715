"""rnnt at mini scale on a small generated LibriSpeech-layout corpus: greedy ids and WER."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.rnnt import serve as rnnt  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"train_utterances": 32, "eval_utterances": 12, "batch_size": 16}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    torch.set_num_threads(1)
    # trains the tiny model for one epoch and caches it
    return rnnt.build(BuildOptions(data_dir=tmp_path_factory.mktemp("librispeech"), threads=1,
                                   train_overrides=TINY, train_epochs=1))


def test_answers_are_length_prefixed_ids_scored_by_wer(task):
    assert task.total == 12 and task.metric == "WER" and task.direction == "min" and task.targets == (0.99,)
    assert task.reference_score == pytest.approx(task.notes["quality"])   # the training evaluation's WER
    out = task.predict([task.load(i) for i in range(3)])
    assert all(o.dtype == np.int32 and o[0] == o.size - 1 for o in out)
    assert rnnt.decode_answer(rnnt.encode_answer([])) == [] and rnnt.decode_answer(np.array([3, 1])) is None
    # the script scores text: the references' own ids give WER 0, an empty answer 1
    from mlpace.benchmarks.rnnt.metrics import CharTokenizer
    refs = rnnt._wer(["a red dog", "the cat"], CharTokenizer())
    perfect = {0: rnnt.encode_answer(CharTokenizer().encode("a red dog")),
               1: rnnt.encode_answer(CharTokenizer().encode("the cat"))}
    assert refs(perfect) == 0.0 and refs({0: rnnt.encode_answer([]), 1: np.zeros(0, np.int32)}) == 1.0
    assert task.target_value(0.99) == pytest.approx(1 - 0.99 * (1 - task.reference_score))


def test_offline_performance_and_accuracy_runs(task, tmp_path):
    options = RunOptions(out=tmp_path, quick=True, system="tiny")
    perf = run_test(task, "Offline", "performance", options)
    assert perf["error"] is None and perf["metric"] == "Samples per second"
    accuracy = run_test(task, "SingleStream", "accuracy", options)
    assert accuracy["result"] == "PASS" and accuracy["benchmark"] == "rnnt"
    assert accuracy["accuracy"]["score"] == pytest.approx(task.reference_score)
