"""What a benchmark hands to the inference runner: samples, a model and its accuracy script.

Each benchmark's inference binding (`mlpace.benchmarks.<folder>.serve`) builds one
`InferenceTask`; the runner, the SUT and LoadGen need nothing else from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mlpace.errors import MlpaceError
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


def with_reference_score(task, cache, fp32_predict):   # cache: mlpace.training.models.ModelCache
    """Set `task.reference_score`: the eager FP32 model's own score on the task's samples."""
    from dataclasses import replace

    fp32 = replace(task, predict=fp32_predict)
    task.reference_score = cache.reference_score(task.total, lambda: score_directly(fp32))
    return task


# --- what every binding's build() shares (`mlpace.benchmarks.<folder>.serve`) ---------------

def start_serving(options, name: str, weights: str, torch_only: str | None = None) -> None:
    """Refuse what the binding cannot serve, then give torch the requested threads.

    `weights`: what `--checkpoint` must hold at reference scale; `torch_only`: why the binding
    cannot run on ONNX Runtime, where it cannot."""
    import torch

    if torch_only and options.backend == "onnxruntime":
        raise MlpaceError(f"{name} runs on the torch backends only ({torch_only})")
    if options.scale == "reference" and not options.checkpoint:
        raise MlpaceError(f"reference {name} needs --checkpoint ({weights})")
    torch.set_num_threads(max(1, options.threads))


def model_and_data(options, name: str, training_benchmark: str, weights: str,
                   torch_only: str | None = None, overrides: dict | None = None):
    """`start_serving`, then the training benchmark's workload with its data prepared, and the
    cache of the served model's weights (trained once at mini scale, else the checkpoint).
    `overrides`: the training config, when the binding adds to `options.train_overrides`."""
    from mlpace.training.models import ModelCache, prepared_workload

    start_serving(options, name, weights, torch_only)
    overrides = options.train_overrides if overrides is None else overrides
    workload = prepared_workload(training_benchmark, options.scale, options.data_dir, overrides)
    cache = ModelCache(f"{name}-{options.scale}", training_benchmark, options.data_dir, overrides,
                       options.checkpoint, options.train_epochs)
    return workload, cache


def served_count(options, available: int) -> int:
    """How many samples the task serves: all of them, or the first `--limit`."""
    return available if options.limit is None else min(options.limit, available)


def serve_predict(cache, predict: Predict, fp32_predict: Predict, **task_fields) -> InferenceTask:
    """An InferenceTask answering with `predict`, its accuracy target relative to the same
    model run eagerly in FP32 (`fp32_predict`); `task_fields`: the other InferenceTask fields."""
    task = InferenceTask(predict=predict, reference_score=0.0, notes=cache.meta.get("training", {}),
                         **task_fields)
    return with_reference_score(task, cache, fp32_predict)


def serve_bundle(options, cache, bundle, **task_fields):
    """`serve_predict` for a ModelBundle on the chosen backend (the ONNX export traces the
    first two samples)."""
    from mlpace.inference.backends import make_predict

    load, total = task_fields["load"], task_fields["total"]
    example = [load(i) for i in range(min(2, total))]
    predict = make_predict(bundle, options.backend, options.device, options.precision, options.threads,
                           example)
    return serve_predict(cache, predict, make_predict(bundle, "torch", options.device), **task_fields)
