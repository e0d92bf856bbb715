"""The MLPerf Inference v1.1 benchmarks, each bound to mlpace's own models and data.

One module per benchmark under `mlpace.inference.models`; each defines

    TRAINING_BENCHMARK = "resnet"      # the training benchmark whose model and data it reuses
    def build(options: BuildOptions) -> InferenceTask

The benchmarks' MLPerf facts (model names, targets, scenarios) are in `mlpace.rules.inference`.

Modules import torch only inside `build`, so listing is cheap.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.rules.inference import BENCHMARKS as INFERENCE_BENCHMARKS  # noqa: F401 - re-exported


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


def _module_name(name: str) -> str:
    return "mlpace.inference.models." + name.replace("-", "_").replace("3d_unet", "unet3d")


def available(name: str) -> bool:
    """True when the binding exists and the training benchmark it reuses is implemented."""
    module = _module_name(name)
    if importlib.util.find_spec(module) is None:
        return False
    from mlpace.benchmarks import implemented_scales
    return "mini" in implemented_scales(importlib.import_module(module).TRAINING_BENCHMARK)


def get_binding(name: str):
    if name not in INFERENCE_BENCHMARKS:
        raise MlpaceError(f"unknown inference benchmark {name!r}; known: {', '.join(INFERENCE_BENCHMARKS)}")
    if not available(name):
        raise MlpaceError(f"inference benchmark {name!r} is not available in this mlpace yet "
                          f"(available: {', '.join(n for n in INFERENCE_BENCHMARKS if available(n)) or 'none'})")
    return importlib.import_module(_module_name(name))
