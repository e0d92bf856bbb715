"""MLPerf Inference v1.1 rules that mlpace checks itself (LoadGen results, accuracy).

Taken from the v1.1 submission checker of mlcommons/inference (`accuracy-target`,
`model_mapping`): a closed-division result must reach 99 % (or 99.9 % for the `-99.9`
variants) of the FP32 reference model's accuracy. The accuracy names are those
`loadgen_log.parse_accuracy_text` gives (rnnt is judged on 100 - WER, named `accuracy`).
"""

from __future__ import annotations

# Submission folder names that stand for an official model class.
MODEL_MAPPING = {
    "ssd-mobilenet": "ssd-small", "ssd-resnet34": "ssd-large",
    "mobilenet": "resnet", "resnet50": "resnet",
}

ACCURACY_TARGETS = {
    "resnet": ("accuracy", 76.46 * 0.99),
    "ssd-small": ("mAP", 22 * 0.99),
    "ssd-large": ("mAP", 20 * 0.99),
    "rnnt": ("accuracy", (100 - 7.452) * 0.99),
    "bert-99": ("f1", 90.874 * 0.99),
    "bert-99.9": ("f1", 90.874 * 0.999),
    "dlrm-99": ("AUC", 80.25 * 0.99),
    "dlrm-99.9": ("AUC", 80.25 * 0.999),
    "3d-unet-99": ("DICE", 0.853 * 0.99),
    "3d-unet-99.9": ("DICE", 0.853 * 0.999),
}

# Every performance run of v1.1 must last at least this long (closed and open).
MIN_DURATION_MS = 600_000


def model_class(benchmark_folder: str) -> str:
    return MODEL_MAPPING.get(benchmark_folder, benchmark_folder)


def accuracy_target(benchmark_folder: str) -> tuple[str, float] | None:
    """(metric, minimum) a closed result of this benchmark must reach, or None if unknown."""
    return ACCURACY_TARGETS.get(model_class(benchmark_folder))
