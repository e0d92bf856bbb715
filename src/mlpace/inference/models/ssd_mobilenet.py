"""ssd-mobilenet: the light SSD (see mlpace.inference.models.ssd)."""

from __future__ import annotations

from mlpace.inference.models.ssd import TARGETS, TRAINING_BENCHMARK, build_variant  # noqa: F401

LOADGEN_MODEL = "ssd-mobilenet"


def build(options):
    return build_variant(LOADGEN_MODEL, options)
