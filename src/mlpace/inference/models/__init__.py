"""The MLPerf Inference v1.1 benchmarks, each bound to mlpace's own models and data.

A benchmark's binding lives with the training benchmark whose model and data it reuses, in
`mlpace.benchmarks.<folder>.serve` (one benchmark, one folder); `SERVED_BY` maps MLPerf's
inference model names to those folders. Each `serve` module defines

    LOADGEN_MODEL = "resnet50"         # its name in mlperf.conf (ssd: VARIANTS, one per name)
    TRAINING_BENCHMARK = "resnet"      # the training benchmark whose model and data it reuses
    TARGETS = (0.99,)                  # fractions of the FP32 score (0.99, 0.999 where MLPerf has both)
    def build(options: BuildOptions, **variant) -> InferenceTask

Modules import torch only inside `build`, so listing is cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from mlpace.errors import MlpaceError

# The seven benchmarks of MLPerf Inference v1.1, in the round's order.
INFERENCE_BENCHMARKS = ["resnet50", "ssd-mobilenet", "ssd-resnet34", "bert", "dlrm", "3d-unet", "rnnt"]

# Each one's folder under mlpace.benchmarks, and the arguments its `serve.build` takes beside
# the options (the two SSDs are one binding with two backbones).
SERVED_BY: dict[str, tuple[str, dict]] = {
    "resnet50": ("resnet", {}),
    "ssd-mobilenet": ("ssd", {"name": "ssd-mobilenet"}),
    "ssd-resnet34": ("ssd", {"name": "ssd-resnet34"}),
    "bert": ("bert", {}),
    "dlrm": ("dlrm", {}),
    "3d-unet": ("unet3d", {}),
    "rnnt": ("rnnt", {}),
}


@dataclass
class BuildOptions:
    scale: str = "mini"                  # "mini" (mlpace's data and cached model) or "reference"
    data_dir: Path | None = None         # data root (default: mlpace's data cache)
    checkpoint: Path | None = None       # a state_dict for the model (required at reference scale)
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    limit: int | None = None             # use only the first N samples (tests, quick looks)
    train_overrides: dict = field(default_factory=dict)   # mini: training config (`--set`), data included
    train_epochs: int | None = None      # mini: cap on training epochs when the model is trained


@dataclass(frozen=True)
class Binding:
    """One inference benchmark: its folder's `serve` module and the variant it serves."""
    name: str
    module: ModuleType
    variant: dict

    @property
    def TARGETS(self) -> tuple[float, ...]:       # noqa: N802 - the serve modules' constant
        return self.module.TARGETS

    def build(self, options: BuildOptions):
        return self.module.build(options, **self.variant)


def available(name: str) -> bool:
    """True when the training benchmark it reuses implements the mini scale."""
    from mlpace.benchmarks import implemented_scales
    return name in SERVED_BY and "mini" in implemented_scales(SERVED_BY[name][0])


def get_binding(name: str) -> Binding:
    if name not in INFERENCE_BENCHMARKS:
        raise MlpaceError(f"unknown inference benchmark {name!r}; known: {', '.join(INFERENCE_BENCHMARKS)}")
    if not available(name):
        raise MlpaceError(f"inference benchmark {name!r} is not available in this mlpace yet "
                          f"(available: {', '.join(n for n in INFERENCE_BENCHMARKS if available(n)) or 'none'})")
    folder, variant = SERVED_BY[name]
    return Binding(name, importlib.import_module(f"mlpace.benchmarks.{folder}.serve"), variant)
