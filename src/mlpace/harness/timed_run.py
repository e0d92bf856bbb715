"""One timed MLPerf training run.

    ┌ untimed ─ init_start ─ data, model, optimizer, logged hyperparameters ─ init_stop ┐
    └ timed ── run_start ─ [block: epochs ... eval] ... ─ run_stop(success | aborted) ──┘

The run stops with `status: success` at the first evaluation that reaches the target, and
with `status: aborted` when the epochs or the time budget are spent, or when the user asks
(Ctrl-C or SIGTERM: the step in progress finishes, one last evaluation records the quality
reached, `run_stop` is logged, and the log passes the official checker; a second Ctrl-C
stops at once, still logging `run_stop`). Reaching the target wins: a run whose last
evaluation (the one made because the budget ran out or the user asked to stop) reaches the
target is a success.
The timed region is the `while` loop in `run_once`; nothing else is in it.

The time budget is a safety net against hopeless runs, not part of the measurement. On CPU
it counts this process's CPU time (all threads, and data-loader processes once they exit)
divided by its torch threads: the seconds the run would have taken with its cores to itself;
never more than the wall-clock time (data-loader processes can add CPU time faster than the
clock runs). So other jobs on a busy machine slow a run down without turning it into an
abort. On CUDA, where the process mostly waits for the GPU, it counts wall-clock time. The
log says which (`mlpace_time_budget`, metadata `clock`).
"""

from __future__ import annotations

import resource
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlpace.harness import distributed
from mlpace.harness.mlperf_log import MLPerfLog, constants
from mlpace.harness.workload import RunContext, Workload
from mlpace.rules.benchmarks import Quality


@dataclass(frozen=True)
class Submitter:
    """Who ran it, as the `submission_*` log keys record it."""
    org: str = "mlpace"
    platform: str = "cpu"
    division: str = "open"
    status: str = "onprem"          # onprem | cloud | preview | research (ruleset 1.1.0 values)


@dataclass
class RunOutcome:
    status: str                     # "success" or "aborted"
    reason: str                     # target reached | max epochs | time budget | interrupted
    seconds: float                  # run_stop - run_start, as logged
    epochs: int
    samples: int
    evals: list[tuple[float, float, Quality]] = field(default_factory=list)  # (epoch, s, quality);
                                    # epoch is fractional for evaluations inside an epoch
    log_path: Path | None = None
    cpu_seconds: float = 0.0        # this process's CPU time in the timed region (all threads):
                                    # on a shared machine, the figure other jobs do not inflate
    budget: str = ""                # the time budget and its clock, in words

    @property
    def converged(self) -> bool:
        return self.status == constants.SUCCESS

    @property
    def quality(self) -> Quality | None:
        return self.evals[-1][2] if self.evals else None


class StopRequest:
    """Turns Ctrl-C and SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means: stop now
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Progress:
    """Callbacks for a progress display; the default shows nothing."""
    def start(self, workload: Workload, seed: int, max_epochs: int) -> None: ...
    def step(self, epoch: int, samples: int) -> None: ...
    def evaluated(self, epoch: int, quality: Quality) -> None: ...
    def finish(self, outcome: RunOutcome) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def process_cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (data loaders)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class TimeBudget:
    """The budget of the timed region, on the clock that other jobs do not inflate (module doc)."""

    def __init__(self, seconds: float, device: str) -> None:
        self.seconds = seconds
        self.clock = "wall" if device.startswith("cuda") else "cpu"
        self.threads = 1
        if self.clock == "cpu":
            import torch  # the threads the workload's setup chose
            self.threads = max(1, torch.get_num_threads())

    def start(self) -> None:
        self._wall0, self._cpu0 = time.monotonic(), process_cpu_seconds()

    def used(self) -> float:
        """Budget seconds used so far."""
        wall = time.monotonic() - self._wall0
        if self.clock == "wall":
            return wall
        return min(wall, (process_cpu_seconds() - self._cpu0) / self.threads)

    def spent(self) -> bool:
        return self.used() > self.seconds

    def describe(self) -> str:
        if self.clock == "wall":
            return f"{self.seconds:g} s wall-clock"
        return (f"{self.seconds:g} s of CPU time per thread, "
                f"{self.threads} thread{'' if self.threads == 1 else 's'}")


def _log_submission(log: MLPerfLog, workload: Workload, sub: Submitter) -> None:
    log.event(constants.SUBMISSION_BENCHMARK, workload.spec.name)
    log.event(constants.SUBMISSION_ORG, sub.org)
    log.event(constants.SUBMISSION_DIVISION, sub.division)
    log.event(constants.SUBMISSION_STATUS, sub.status)
    log.event(constants.SUBMISSION_PLATFORM, sub.platform)


class EvalSchedule:
    """When a run evaluates, and the evaluations so far. On the epoch cadence, every
    `eval_every` epochs from `start_eval_at` (one epoch block per evaluation); for a workload
    with eval_interval_samples() > 0, every that many training samples, inside the epochs."""

    def __init__(self, workload: Workload, log: MLPerfLog, progress: Progress, max_epochs: int,
                 start_ms: int) -> None:
        scale = workload.scale_spec
        self.workload, self.log, self.progress = workload, log, progress
        self.target, self.max_epochs, self.start_ms = scale.target, max_epochs, start_ms
        self.eval_every = max(1, scale.eval_every)
        self.start_eval_at = scale.start_eval_at
        self.per_epoch = max(1, workload.train_samples())
        self.interval = workload.eval_interval_samples()   # >0: evaluate inside epochs, by samples
        self.next_eval = self.interval
        self.evaluated_at = -1                             # `samples` at the last evaluation
        self.evals: list[tuple[float, float, Quality]] = []

    def block_epochs(self, epochs_done: int) -> int:
        """Epochs in the next block; on the by-sample cadence one, with the evaluations inside
        it (as MLPerf's dlrm logs)."""
        return 1 if self.interval else min(self.eval_every, self.max_epochs - epochs_done)

    def due_inside(self, epoch: int, samples: int, epoch_start_samples: int) -> float | None:
        """The fractional epoch to evaluate at now, on the by-sample cadence; None: not now."""
        if not self.interval or samples < self.next_eval:
            return None
        self.next_eval = (samples // self.interval + 1) * self.interval   # the next multiple
        if epoch < self.start_eval_at:
            return None
        return round(epoch - 1 + (samples - epoch_start_samples) / self.per_epoch, 4)

    def due_at_block_end(self, epoch: int, samples: int, cut: str) -> bool:
        """On the epoch cadence; and always when the run ends early (`cut`) or runs out of
        epochs without a fresh evaluation, so that the log records the quality reached and
        stays a complete MLPerf log (the checker wants an eval)."""
        last = epoch >= self.max_epochs
        return self.evaluated_at != samples and (
            bool(cut) or last or (not self.interval and epoch >= self.start_eval_at))

    def evaluate(self, epoch: int, epoch_num: float, samples: int) -> bool:
        """Log one evaluation; True when it reaches the target."""
        self.log.start(constants.EVAL_START, epoch_num=epoch_num)
        quality = self.workload.evaluate(epoch)
        self.log.event(constants.EVAL_ACCURACY, quality, epoch_num=epoch_num)
        self.log.end(constants.EVAL_STOP, epoch_num=epoch_num)
        self.evals.append((epoch_num, (_now_ms() - self.start_ms) / 1000, quality))
        self.evaluated_at = samples
        self.progress.evaluated(epoch, quality)
        return self.workload.spec.reached(quality, self.target)


def _initialise(workload: Workload, ctx: RunContext, log: MLPerfLog, submitter: Submitter,
                budget: float, after_init: Callable[[], None] | None) -> TimeBudget:
    """The untimed part, init_start .. init_stop: data, model, and the keys logged before the run."""
    log.event(constants.CACHE_CLEAR, False)  # mlpace does not drop the OS page cache
    log.start(constants.INIT_START)
    _log_submission(log, workload, submitter)
    log.event(constants.SEED, ctx.seed)
    log.event("world_size", ctx.world_size)   # processes training together (data parallel)
    workload.prepare_data(ctx.data_dir)
    workload.setup(ctx)
    for key, value in workload.hyperparameters().items():
        log.event(key, value)
    log.event(constants.TRAIN_SAMPLES, workload.train_samples())
    log.event(constants.EVAL_SAMPLES, workload.eval_samples())
    for name in workload.initialized_tensors():
        log.event(constants.WEIGHTS_INITIALIZATION, tensor=name)
    time_budget = TimeBudget(budget, ctx.device)
    # mlpace's own key (the checker allows extra keys): which clock the budget counts
    log.event("mlpace_time_budget", budget, clock=time_budget.clock, threads=time_budget.threads)
    # The scale and target the run trains to, from the log itself: an importer must not take
    # a mini log filed under a published round for a reference result (`results.importers`).
    log.event("mlpace_scale", workload.scale)
    log.event("mlpace_quality_target", workload.scale_spec.target, metric=workload.spec.metric,
              direction=workload.spec.direction)
    if after_init:
        after_init()  # e.g. a distributed barrier, so that every rank starts together
    log.end(constants.INIT_STOP)
    return time_budget


def _train_to_target(workload: Workload, ctx: RunContext, log: MLPerfLog, schedule: EvalSchedule,
                     time_budget: TimeBudget, stop: StopRequest,
                     progress: Progress) -> tuple[str, str, int, int]:
    """The timed loop: epoch blocks until the target, the last epoch, the time budget or a
    stop request. Returns (status, reason, epochs, samples)."""
    epoch, samples = 0, 0
    while epoch < schedule.max_epochs:
        first = epoch + 1
        count = schedule.block_epochs(epoch)
        cut = ""        # why the block ended early: "interrupted" or "time budget"
        done = False    # an evaluation inside the block reached the target
        log.start(constants.BLOCK_START, first_epoch_num=first, epoch_count=count)
        for epoch in range(first, first + count):
            log.start(constants.EPOCH_START, epoch_num=epoch)
            epoch_start_samples = samples
            for n in workload.train_epoch(epoch):
                samples += n
                progress.step(epoch, samples)
                # any_rank: every rank of a distributed run takes the same decision
                if distributed.any_rank(stop.requested or time_budget.spent(), ctx):
                    cut = "interrupted" if distributed.any_rank(stop.requested, ctx) else "time budget"
                    break
                fraction = schedule.due_inside(epoch, samples, epoch_start_samples)
                if fraction is not None and schedule.evaluate(epoch, fraction, samples):
                    done = True
                    break
            log.end(constants.EPOCH_STOP, epoch_num=epoch)
            if cut or done:
                break
        if not done and schedule.due_at_block_end(epoch, samples, cut):
            done = schedule.evaluate(epoch, epoch, samples)
        log.end(constants.BLOCK_STOP, first_epoch_num=first)
        if done:        # first: reaching the target is success, whatever else ran out
            return constants.SUCCESS, "target reached", epoch, samples
        if cut:
            return constants.ABORTED, cut, epoch, samples
        if distributed.any_rank(stop.requested, ctx):
            return constants.ABORTED, "interrupted", epoch, samples
        if distributed.any_rank(time_budget.spent(), ctx):
            return constants.ABORTED, "time budget", epoch, samples
    return constants.ABORTED, "max epochs", epoch, samples


def run_once(workload: Workload, ctx: RunContext, log_path: Path | None,
             submitter: Submitter = Submitter(), progress: Progress | None = None,
             time_budget_s: float | None = None, max_epochs: int | None = None,
             stop: StopRequest | None = None,
             after_init: Callable[[], None] | None = None) -> RunOutcome:
    """Initialise (untimed), then train and evaluate to the target (timed); log everything."""
    progress = progress or Progress()
    scale = workload.scale_spec
    budget = time_budget_s if time_budget_s is not None else scale.time_budget_s
    max_epochs = max_epochs if max_epochs is not None else scale.max_epochs
    log = MLPerfLog(log_path, enabled=ctx.rank == 0)
    stop = stop or StopRequest()
    running = False  # between run_start and run_stop: a crash there still logs run_stop
    try:
        time_budget = _initialise(workload, ctx, log, submitter, budget, after_init)
        progress.start(workload, ctx.seed, max_epochs)
        start_ms, cpu_start = _now_ms(), time.process_time()
        log.start(constants.RUN_START, time_ms=start_ms)
        running = True
        time_budget.start()
        schedule = EvalSchedule(workload, log, progress, max_epochs, start_ms)
        status, reason, epoch, samples = _train_to_target(workload, ctx, log, schedule, time_budget,
                                                          stop, progress)
        stop_ms = _now_ms()
        log.end(constants.RUN_STOP, time_ms=stop_ms, status=status)
        running = False
        outcome = RunOutcome(status, reason, (stop_ms - start_ms) / 1000, epoch, samples, schedule.evals,
                             log_path, cpu_seconds=time.process_time() - cpu_start,
                             budget=time_budget.describe())
        progress.finish(outcome)
        return outcome
    except BaseException:
        if running:  # an error or a second Ctrl-C: the log still ends as an aborted run
            log.end(constants.RUN_STOP, status=constants.ABORTED)
        raise
    finally:
        log.close()
