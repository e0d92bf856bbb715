"""ssd-mobilenet: the light SSD (see mlpace.inference.models.ssd)."""

from __future__ import annotations

from mlpace.inference.models.ssd import TRAINING_BENCHMARK, build_variant  # noqa: F401


def build(options):
    return build_variant("ssd-mobilenet", options)
