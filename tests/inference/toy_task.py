"""A numpy-only InferenceTask for tests of the LoadGen glue (no torch, fast)."""

from __future__ import annotations

import time

import numpy as np

from mlpace.inference.task import InferenceTask


def toy_task(total: int = 64, delay_s: float = 0.0, fail_after: int | None = None,
             hang: bool = False, wrong_every: int = 0, model: str = "resnet50") -> InferenceTask:
    """Sample i is a vector whose sum's parity is its label; the 'model' predicts that parity."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 10, size=(total, 4)).astype(np.float32)
    labels = (data.sum(axis=1) % 2).astype(np.int32)
    calls = {"n": 0}

    def predict(samples):
        calls["n"] += 1
        if hang:
            time.sleep(3600)
        if fail_after is not None and calls["n"] > fail_after:
            raise ValueError("toy backend failure")
        if delay_s:
            time.sleep(delay_s)
        return [np.array([int(s[1:].sum()) % 2], dtype=np.int32) for s in samples]

    def load(index):
        return np.concatenate([[index], data[index]]).astype(np.float32)

    def score(outputs):
        wrong = {i for i in outputs if wrong_every and i % wrong_every == 0}
        hits = [int(out[0]) == labels[i] and i not in wrong for i, out in outputs.items()]
        return float(np.mean(hits))

    return InferenceTask(name="toy", loadgen_model=model, total=total, load=load,
                         predict=predict, output_dtype="int32", score=score,
                         metric="accuracy", reference_score=1.0, max_batch=8)
