"""dlrm: click-through prediction on Criteo-format click logs, ROC AUC, 99 % and 99.9 % of FP32.

A sample is one click-log line (13 dense features, 26 categorical ids, encoded as the training
code encodes them); the SUT answers with the click probability (float32), and the accuracy
script is the training evaluation's AUC (scikit-learn). MLPerf v1.1 groups lines per user
into queries of 100-700 pairs; mlpace keeps one line per sample, so its Server and Offline
figures count lines.
mini: the training benchmark's DLRM-mini (trained once, cached) on its generated evaluation
day; reference: a user checkpoint on the Criteo 1TB day_23 file.
"""

from __future__ import annotations

import numpy as np

from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "dlrm"


def _bundle(model):
    from mlpace.inference.backends import ModelBundle

    def collate(samples):
        return (np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples]))

    def postprocess(outputs, _samples):
        probability = 1.0 / (1.0 + np.exp(-outputs[0].astype(np.float64)))
        return [np.array([p], np.float32) for p in probability]
    return ModelBundle(model=model, collate=collate, postprocess=postprocess,
                       input_names=("dense", "categorical"))


def _auc(labels: np.ndarray):
    def score(outputs: dict[int, np.ndarray]) -> float:
        from mlpace.benchmarks.dlrm.workload import roc_auc
        indices = [i for i, out in outputs.items() if out.size]
        if not indices:
            return 0.0
        return roc_auc(labels[indices], np.array([outputs[i][0] for i in indices]))
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

    def load(index):
        return dense[index], categorical[index]

    return serve_bundle(options, cache, _bundle(model), name="dlrm",
                        total=served_count(options, len(labels)), load=load, output_dtype="float32",
                        score=_auc(labels), metric="AUC", max_batch=1024)
