"""The MLPerf Inference v1.1 benchmarks, each bound to mlpace's own models and data.

A benchmark's binding lives with the training benchmark whose model and data it reuses, in
`mlpace.benchmarks.<folder>.serve` (one benchmark, one folder); `mlpace.rules.inference.FOLDERS`
maps MLPerf's inference model names to those folders. Each `serve` module defines

    TRAINING_BENCHMARK = "resnet"      # the training benchmark whose model and data it reuses
    TORCH_ONLY = "why"                 # only where it cannot run on ONNX Runtime
    def build(options: BuildOptions, **variant) -> InferenceTask

The benchmarks' MLPerf facts (model names, targets, scenarios) are in `mlpace.rules.inference`.
What every `build` shares is in `mlpace.inference.task`: `model_and_data` (the checks, torch's
threads, the training benchmark's data and the served model's cache), `served_count`
(`--limit`), and `serve_bundle` / `serve_predict` (the task, its target relative to FP32).

Modules import torch only inside `build`, so listing is cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from mlpace.errors import MlpaceError
from mlpace.rules.inference import BENCHMARKS as INFERENCE_BENCHMARKS  # noqa: F401 - re-exported
from mlpace.rules.inference import FOLDERS

# What `serve.build` takes beside the options where one folder serves several benchmarks
# (the two SSDs are one binding with two backbones).
VARIANTS: dict[str, dict] = {"ssd-mobilenet": {"name": "ssd-mobilenet"},
                             "ssd-resnet34": {"name": "ssd-resnet34"}}


@dataclass
class BuildOptions:
    scale: str = "mini"                  # "mini" (mlpace's data and cached model) or "reference"
    data_dir: Path | None = None         # data root (default: mlpace's data cache)
    checkpoint: Path | None = None       # a state_dict for the model (required at reference scale)
    backend: str = "torch"               # BACKENDS, or "auto" (`Binding.backend_for`)
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
    def torch_only(self) -> str | None:
        """Why this benchmark cannot run on ONNX Runtime, or None when it can."""
        return getattr(self.module, "TORCH_ONLY", None)

    def backend_for(self, options: BuildOptions) -> str:
        """The backend `auto` means here: ONNX Runtime for an fp32 model on the CPU where the
        benchmark exports to ONNX, torch otherwise. On a CPU the exported graph runs with no
        Python between ops: 2-3x eager torch's rate at a batch of one, and a small Server
        batch costs it no more per sample than Offline's large one (BENCHMARKS.md)."""
        if options.backend != "auto":
            return options.backend
        cpu = options.device == "cpu"
        return "onnxruntime" if cpu and options.precision == "fp32" and not self.torch_only else "torch"

    def build(self, options: BuildOptions):
        return self.module.build(options, **self.variant)


def available(name: str) -> bool:
    """True when the training benchmark it reuses implements the mini scale."""
    from mlpace.benchmarks import implemented_scales
    return name in FOLDERS and "mini" in implemented_scales(FOLDERS[name])


def get_binding(name: str) -> Binding:
    if name not in INFERENCE_BENCHMARKS:
        raise MlpaceError(f"unknown inference benchmark {name!r}; known: {', '.join(INFERENCE_BENCHMARKS)}")
    if not available(name):
        raise MlpaceError(f"inference benchmark {name!r} is not available in this mlpace yet "
                          f"(available: {', '.join(n for n in INFERENCE_BENCHMARKS if available(n)) or 'none'})")
    module = importlib.import_module(f"mlpace.benchmarks.{FOLDERS[name]}.serve")
    return Binding(name, module, VARIANTS.get(name, {}))
