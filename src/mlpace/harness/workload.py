"""What a benchmark implementation provides to the harness.

A `Workload` is one benchmark at one scale, written as plain methods that the harness calls
in a fixed order (see `mlpace.harness.timed_run`):

    untimed (between init_start and init_stop)
        prepare_data()            generate the cached mini data set, or check the real one
        setup(ctx)                build model, optimizer and loaders on ctx.device
        hyperparameters()         the MLPerf keys to log (global_batch_size, opt_* ...)
        initialized_tensors()     names for `weights_initialization` (closed rules ask for them)
    timed (between run_start and run_stop)
        train_epoch(epoch)        a generator: one optimizer step per next(), yields the
                                  number of samples that step trained on
        evaluate(epoch)           the quality metric (float, or dict for several metrics)
                                  at the scale spec's epoch cadence, or every
                                  eval_interval_samples() training samples

The harness owns the loop, the clock, the log and the stop conditions, so that a benchmark's
own code is only the ML, and so that the same methods drive a bare loop in bench/.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from mlpace.errors import MlpaceError
from mlpace.rules.benchmarks import BenchmarkSpec, Quality, ScaleSpec


@dataclass
class RunContext:
    """Everything a run needs to know about where and how it runs."""
    device: str = "cpu"              # "cpu" or "cuda[:N]"
    seed: int = 0
    data_dir: Path = Path(".")
    rank: int = 0                    # torch.distributed rank (0 when not distributed)
    world_size: int = 1
    local_rank: int = 0
    bf16: bool = True                # autocast to bfloat16 on CUDA
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self):
        """bf16 autocast on CUDA (the usual mixed precision of MLPerf GPU submissions); fp32 on CPU."""
        if self.is_cuda and self.bf16:
            import torch
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups with no weight decay on norms and biases (every 1-d tensor),
    as the MLPerf reference recipes do."""
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Workload:
    """Base class of a benchmark at one scale; subclasses fill in the methods below."""

    spec: BenchmarkSpec
    scale: str
    config: Any                       # the resolved flat config dataclass

    def __init__(self, spec: BenchmarkSpec, scale: str, config: Any):
        self.spec, self.scale, self.config = spec, scale, config

    @property
    def scale_spec(self) -> ScaleSpec:
        return self.spec.scale(self.scale)

    # --- untimed -------------------------------------------------------------------------
    def prepare_data(self, data_dir: Path) -> None:
        raise NotImplementedError

    def locate_data(self, data_dir: Path, real_format: str, mini: tuple[str, int, Callable[[Path], None]],
                    missing: str) -> Path:
        """The data set a run reads, the same way for every benchmark: the config's `data_path`
        (a folder in the real format, `real_format` names it), else at mini scale the generated
        set `mini` = (name, version, generate(folder)), cached under `data_dir`, else `missing`:
        an error saying what the reference scale needs and how to pass it."""
        from mlpace.harness.datasets import cached_dataset, require_dir
        if self.config.data_path:
            return require_dir(Path(self.config.data_path), real_format)
        if self.scale != "mini":
            raise MlpaceError(missing)
        name, version, generate = mini
        return cached_dataset(data_dir, name, version, generate)

    def batch_hyperparameters(self, accumulation_steps: int = 1) -> dict[str, Any]:
        """The keys every benchmark logs first: global_batch_size (the config's batch_size, over
        all ranks) and gradient_accumulation_steps."""
        from mlperf_logging.mllog import constants
        return {constants.GLOBAL_BATCH_SIZE: self.config.batch_size,
                constants.GRADIENT_ACCUMULATION_STEPS: accumulation_steps}

    def begin_setup(self, ctx: RunContext) -> None:
        """The first lines of every `setup`: keep the context, take the config's torch CPU
        `threads` (0: torch's default), and seed torch's global generator with the run seed
        (model initialisation draws from it)."""
        import torch
        self.ctx = ctx
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        torch.manual_seed(ctx.seed)

    def setup(self, ctx: RunContext) -> None:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        """MLPerf keys and values logged once before run_start (global_batch_size first)."""
        raise NotImplementedError

    def initialized_tensors(self) -> list[str]:
        """Tensor names for the closed-division `weights_initialization` lines (may be empty)."""
        return []

    def train_samples(self) -> int:
        raise NotImplementedError

    def eval_interval_samples(self) -> int:
        """Evaluate after every this many training samples, inside epochs (MLPerf's cadence
        for bert and dlrm); 0 (the default): every `eval_every` epochs of the scale spec."""
        return 0

    def eval_samples(self) -> int:
        raise NotImplementedError

    # --- timed ---------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> Iterator[int]:
        raise NotImplementedError

    def evaluate(self, epoch: int) -> Quality:
        raise NotImplementedError

    # --- after the run -------------------------------------------------------------------
    def trained_model(self):
        """The trained torch module (inference reuses it), out of any DDP wrapper."""
        model = getattr(self, "model", None)
        return getattr(model, "module", model)
