"""dlrm: click-through prediction on Criteo-format click logs, ROC AUC, 99 % and 99.9 % of FP32.

A sample is one user's query, as in MLPerf v1.1: a run of 100-700 consecutive click-log lines
(user-item pairs; 13 dense features and 26 categorical ids each, encoded as the training code
encodes them), its length drawn as mlcommons' reference draws it (`rules.inference`). The SUT
answers with the click probability of every line (float32), and the accuracy script is the
training evaluation's AUC (scikit-learn) over all answered lines. Server and Offline figures
therefore count queries of 270 lines on average, like the published ones; serving one line per
sample made LoadGen's per-sample cost (a Python object each) a seventh of the work.
mini: the training benchmark's DLRM-mini (trained once, cached) on its generated evaluation
day; reference: a user checkpoint on the Criteo 1TB day_23 file.
"""

from __future__ import annotations

import numpy as np

from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask
from mlpace.rules import inference as rules

TRAINING_BENCHMARK = "dlrm"
# Queries per batch: about 2,100 lines, 7-9 ms of dlrm-mini on one core, inside Server's 30 ms
# (Offline: 4 and 8 within 3 % of each other, 8 ahead in 2 of 3 bench runs).
MAX_BATCH_QUERIES = 8


def query_offsets(lines: int) -> np.ndarray:
    """Where each user's query starts in the evaluation lines, and where the last one ends:
    lengths drawn from MLPerf's quantile in its reference's order (the last one cut at `lines`)."""
    if lines <= 0:
        return np.zeros(1, np.int64)
    quantile = np.array(rules.DLRM_PAIRS_QUANTILE)
    rng = np.random.RandomState(rules.DLRM_PAIRS_SEED)
    # The reference draws one length at a time with randint(0, len); a vector of draws from the
    # same generator is the same sequence.
    expected = lines // int(quantile.min()) + 1
    lengths = quantile[rng.randint(low=0, high=len(quantile), size=expected)]
    ends = np.minimum(np.cumsum(lengths), lines)
    ends = ends[:int(np.searchsorted(ends, lines)) + 1]
    return np.concatenate(([0], ends)).astype(np.int64)


def _bundle(model):
    from mlpace.inference.backends import ModelBundle

    def collate(queries):
        return (np.concatenate([q[0] for q in queries]), np.concatenate([q[1] for q in queries]))

    def postprocess(outputs, queries):
        probability = (1.0 / (1.0 + np.exp(-outputs[0].astype(np.float64)))).astype(np.float32)
        ends = np.cumsum([len(q[0]) for q in queries])[:-1]
        return np.split(probability.reshape(-1), ends)
    return ModelBundle(model=model, collate=collate, postprocess=postprocess,
                       input_names=("dense", "categorical"))


def _auc(labels: np.ndarray, offsets: np.ndarray):
    def score(outputs: dict[int, np.ndarray]) -> float:
        from mlpace.benchmarks.dlrm.workload import roc_auc
        answered = [i for i, out in outputs.items() if out.size == offsets[i + 1] - offsets[i]]
        if not answered:
            return 0.0
        truth = np.concatenate([labels[offsets[i]:offsets[i + 1]] for i in answered])
        return roc_auc(truth, np.concatenate([outputs[i] for i in answered]))
    return score


def build(options: BuildOptions) -> InferenceTask:
    from mlpace.harness.datasets import data_root
    from mlpace.harness.workload import RunContext
    from mlpace.inference.task import model_and_data, serve_bundle, served_count

    workload, cache = model_and_data(options, "dlrm", TRAINING_BENCHMARK, "a DLRM state_dict")
    # The training setup reads and encodes the click logs and sizes the embedding tables;
    # its evaluation day is what inference serves.
    workload.setup(RunContext(device="cpu", seed=0, data_dir=data_root(options.data_dir)))
    model = cache.load_or_train(lambda: workload.model)
    dense, categorical, labels = (t.numpy() for t in workload.val)
    offsets = query_offsets(len(labels))

    def load(index):     # views: a query costs no copy until a batch is put together
        start, end = offsets[index], offsets[index + 1]
        return dense[start:end], categorical[start:end]

    return serve_bundle(options, cache, _bundle(model), name="dlrm",
                        total=served_count(options, len(offsets) - 1), load=load, output_dtype="float32",
                        score=_auc(labels, offsets), metric="AUC", max_batch=MAX_BATCH_QUERIES)
