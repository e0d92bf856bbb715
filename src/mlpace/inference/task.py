"""What a benchmark hands to the inference runner: samples, a model and its accuracy script.

Each benchmark's inference binding (`mlpace.inference.models.<name>`) builds one
`InferenceTask`; the runner, the SUT and LoadGen need nothing else from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mlpace.inference.sut import Predict
from mlpace.rules import inference as rules


@dataclass
class InferenceTask:
    name: str                       # mlpace's benchmark name, e.g. "resnet50"
    total: int                      # samples in the data set
    load: Callable[[int], object]   # sample i, preprocessed, as the QSL keeps it in memory
    predict: Predict                # a list of samples -> one numpy array per sample
    output_dtype: str               # dtype of those arrays (decodes mlperf_log_accuracy.json)
    score: Callable[[dict[int, np.ndarray]], float]   # the accuracy script: outputs by index
    metric: str                     # e.g. "top-1 accuracy"
    reference_score: float          # the FP32 model's own score on the same data
    direction: str = "max"          # "min" for WER: the 99 % rule applies to 1 - WER
    max_batch: int = 32
    notes: dict = field(default_factory=dict)
    # Figures the official accuracy script prints besides the score (bert: exact_match).
    extra_scores: Callable[[dict[int, np.ndarray]], dict[str, float]] | None = None
    # The model name in mlperf.conf; from the rules for MLPerf's benchmarks (tests' toy tasks set it).
    loadgen_model: str = ""

    def __post_init__(self):
        if not self.loadgen_model:
            self.loadgen_model = rules.models_of(self.name)[0].loadgen_model

    @property
    def targets(self) -> tuple[float, ...]:
        """Fractions of the FP32 score MLPerf asks for (0.99, and 0.999 where it has both)."""
        return rules.fractions(self.name) or (0.99,)

    def target_value(self, fraction: float) -> float:
        """The score needed for `fraction` (0.99 or 0.999) of the FP32 model's quality."""
        if self.direction == "min":
            return 1.0 - fraction * (1.0 - self.reference_score)
        return fraction * self.reference_score

    def passes(self, score: float, fraction: float) -> bool:
        target = self.target_value(fraction)
        return score <= target if self.direction == "min" else score >= target

    def result_name(self, fraction: float) -> str:
        """The folder name MLPerf uses: `bert-99`, `dlrm-99.9`; plain for one-target models."""
        if not rules.models_of(self.name):          # a test's toy task
            return self.name
        return rules.model_for(self.name, fraction).name


def score_directly(task: InferenceTask, batch: int | None = None) -> float:
    """The task's score from a plain batched loop over every sample (no LoadGen)."""
    batch = batch or task.max_batch
    outputs: dict[int, np.ndarray] = {}
    for start in range(0, task.total, batch):
        indices = list(range(start, min(start + batch, task.total)))
        for index, out in zip(indices, task.predict([task.load(i) for i in indices])):
            outputs[index] = np.asarray(out, dtype=task.output_dtype).ravel()
    return float(task.score(outputs))
