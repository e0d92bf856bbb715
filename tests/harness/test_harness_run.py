"""The timed run: stop conditions, log structure, and the official checker's verdict.

`LinearWorkload` is a real (if tiny) learning problem, so that these tests exercise the
harness quickly and independently of any benchmark: logistic regression on two Gaussian blobs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from mlpace.harness.timed_run import StopRequest, Submission, TimeBudget, run_once
from mlpace.harness.workload import RunContext, Workload
from mlpace.rules.benchmarks import BenchmarkSpec, ScaleSpec
from mlpace.submission.scoring import olympic_score

from official_checkers import run_compliance_checker

SPEC = BenchmarkSpec(
    name="resnet", area="test", metric="accuracy", direction="max", runs=5, olympic_drop=1,
    reference=ScaleSpec("linear", "blobs", target=0.9, eval_every=2, max_epochs=6, time_budget_s=60),
    mini=ScaleSpec("linear", "blobs", target=0.9, eval_every=1, max_epochs=6, time_budget_s=60,
                   untrained_quality=0.5))


class LinearWorkload(Workload):
    def __init__(self, scale="mini", fail_at_epoch=None, stop=None, step_sleep_s=0.0):
        super().__init__(SPEC, scale, config=None)
        self.fail_at_epoch, self.stop, self.step_sleep_s = fail_at_epoch, stop, step_sleep_s
        self.signal_sent = False

    def prepare_data(self, data_dir):
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, 2, (512,), generator=g)
        self.x = torch.randn(512, 2, generator=g) + (y[:, None] * 2 - 1) * 1.5
        self.y = y

    def setup(self, ctx):
        torch.manual_seed(ctx.seed)
        self.model = torch.nn.Linear(2, 2)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05)

    def hyperparameters(self):
        return {"global_batch_size": 64, "opt_name": "sgd", "opt_base_learning_rate": 0.05}

    def train_samples(self):
        return 512

    def eval_samples(self):
        return 512

    def train_epoch(self, epoch):
        if epoch == self.fail_at_epoch:
            raise RuntimeError("boom")
        for i in range(0, 512, 64):
            loss = torch.nn.functional.cross_entropy(self.model(self.x[i:i + 64]), self.y[i:i + 64])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if self.stop is not None and epoch == 2 and i == 128:
                os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` from outside would
                self.signal_sent = True
            if self.step_sleep_s:
                time.sleep(self.step_sleep_s)  # wall time without CPU, as when other jobs hold the cores
            yield 64

    def evaluate(self, epoch):
        with torch.no_grad():
            return float((self.model(self.x).argmax(1) == self.y).float().mean())


def read_log(path: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in path.read_text().splitlines()
            if line.startswith(":::MLLOG ")]


def keys(lines):
    return [line["key"] for line in lines]


def test_success_at_first_eval_reaching_target(tmp_path):
    log = tmp_path / "result_0.txt"
    outcome = run_once(LinearWorkload(), RunContext(seed=3), log, Submission(platform="test"))
    lines = read_log(log)
    assert outcome.converged and outcome.reason == "target reached"
    assert lines[-1]["key"] == "run_stop" and lines[-1]["metadata"]["status"] == "success"
    evals = [line for line in lines if line["key"] == "eval_accuracy"]
    assert evals[-1]["value"] >= 0.9 and all(e["value"] < 0.9 for e in evals[:-1])
    assert [e["metadata"]["epoch_num"] for e in evals] == list(range(1, len(evals) + 1))
    # the untimed part comes first; the run time is exactly what the log says
    k = keys(lines)
    assert k.index("init_start") < k.index("global_batch_size") < k.index("init_stop") < k.index("run_start")
    start = next(line["time_ms"] for line in lines if line["key"] == "run_start")
    assert outcome.seconds == pytest.approx((lines[-1]["time_ms"] - start) / 1000)


@pytest.mark.slow
def test_log_passes_official_compliance_checker(tmp_path):
    log = tmp_path / "result_0.txt"
    run_once(LinearWorkload(), RunContext(seed=3), log)
    ok, output = run_compliance_checker(log)
    assert ok, output


def test_aborted_when_epochs_run_out(tmp_path):
    log = tmp_path / "r.txt"
    spec_target_unreachable = LinearWorkload()
    spec_target_unreachable.spec = BenchmarkSpec(**{**SPEC.__dict__, "mini": ScaleSpec(
        "linear", "blobs", target=1.01, eval_every=1, max_epochs=3, time_budget_s=60)})
    outcome = run_once(spec_target_unreachable, RunContext(seed=1), log)
    assert not outcome.converged and outcome.reason == "max epochs" and outcome.epochs == 3
    assert read_log(log)[-1]["metadata"]["status"] == "aborted"


def test_aborted_when_time_budget_spent(tmp_path):
    log = tmp_path / "r.txt"
    outcome = run_once(LinearWorkload(), RunContext(seed=1), log, time_budget_s=0.0)
    assert outcome.reason == "time budget" and outcome.samples == 64  # one step, then the clock
    assert len(outcome.evals) == 1  # the quality reached is still measured and logged
    lines = read_log(log)
    assert lines[-1]["metadata"]["status"] == "aborted"
    assert keys(lines)[-6:] == ["epoch_stop", "eval_start", "eval_accuracy", "eval_stop", "block_stop", "run_stop"]


def test_sigterm_ends_run_as_aborted_with_valid_log(tmp_path):
    log = tmp_path / "r.txt"
    before = signal.getsignal(signal.SIGTERM)
    # an unreachable target: only the signal can end the run before its 6 epochs
    workload = _with_mini(LinearWorkload(stop=True), max_epochs=6)
    with StopRequest() as stop:
        outcome = run_once(workload, RunContext(seed=1), log, stop=stop)
    assert workload.signal_sent
    assert not outcome.converged and outcome.reason == "interrupted" and outcome.epochs == 2
    assert outcome.samples == 512 + 3 * 64   # the step in progress finished, no step after it
    lines = read_log(log)
    assert lines[-1]["key"] == "run_stop" and lines[-1]["metadata"]["status"] == "aborted"
    assert keys(lines)[-6:] == ["epoch_stop", "eval_start", "eval_accuracy", "eval_stop", "block_stop", "run_stop"]
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


class TargetAtOnce(LinearWorkload):
    """Every evaluation reaches the target: the run ends at its first evaluation."""
    def evaluate(self, epoch):
        return 1.0


@pytest.mark.parametrize("why", ["time budget", "interrupted"])
def test_target_reached_at_the_last_evaluation_is_success(tmp_path, why):
    """The evaluation made because the budget ran out (or the user asked to stop) reaches the
    target: the run converged, and is logged `success`, not `aborted`."""
    log = tmp_path / "r.txt"
    stop = StopRequest()
    stop.requested = why == "interrupted"
    outcome = run_once(_with_mini(TargetAtOnce(), target=0.9), RunContext(seed=1), log, stop=stop,
                       time_budget_s=0.0 if why == "time budget" else 60)
    assert outcome.samples == 64          # cut after one step, then the last evaluation
    assert outcome.converged and outcome.reason == "target reached"
    assert read_log(log)[-1]["metadata"]["status"] == "success"


def test_budget_counts_cpu_time_so_a_slowed_run_still_converges(tmp_path):
    """Steps that wait (as a run does on a machine other jobs keep busy) take wall time but
    little CPU time: on CPU the budget must not turn such a converging run into an abort."""
    log = tmp_path / "r.txt"
    budget = 0.3
    outcome = run_once(LinearWorkload(step_sleep_s=0.05), RunContext(seed=3), log, time_budget_s=budget)
    assert outcome.seconds > budget       # a wall-clock budget would have aborted this run
    assert outcome.converged and outcome.reason == "target reached"
    logged = next(line for line in read_log(log) if line["key"] == "mlpace_time_budget")
    assert logged["value"] == budget and logged["metadata"]["clock"] == "cpu"
    assert logged["metadata"]["threads"] >= 1
    assert "CPU time" in outcome.budget


def test_budget_on_cuda_counts_wall_clock():
    budget = TimeBudget(0.01, "cuda:0")   # the process mostly waits for the GPU: CPU time says little
    budget.start()
    time.sleep(0.02)
    assert budget.clock == "wall" and budget.spent() and "wall-clock" in budget.describe()


def test_crash_inside_timed_region_still_ends_log(tmp_path):
    log = tmp_path / "r.txt"
    w = LinearWorkload(fail_at_epoch=2)
    w.spec = BenchmarkSpec(**{**SPEC.__dict__, "mini": ScaleSpec(
        "linear", "blobs", target=1.01, eval_every=1, max_epochs=5, time_budget_s=60)})
    with pytest.raises(RuntimeError):
        run_once(w, RunContext(seed=1), log)
    last = read_log(log)[-1]
    assert last["key"] == "run_stop" and last["metadata"]["status"] == "aborted"


def _with_mini(workload, **scale):
    """The workload with its mini scale spec replaced (the target unreachable by default)."""
    fields = {"model": "linear", "dataset": "blobs", "target": 1.01, "eval_every": 1,
              "max_epochs": 3, "time_budget_s": 60, **scale}
    workload.spec = BenchmarkSpec(**{**SPEC.__dict__, "mini": ScaleSpec(**fields)})
    return workload


class SampleCadenceWorkload(LinearWorkload):
    """Evaluates every 128 samples, inside its 512-sample epochs (as MLPerf's dlrm and bert)."""
    def eval_interval_samples(self):
        return 128


def test_evaluation_inside_epochs_by_sample_count(tmp_path):
    log = tmp_path / "r.txt"
    outcome = run_once(_with_mini(SampleCadenceWorkload(), max_epochs=2), RunContext(seed=1), log)
    lines = read_log(log)
    evals = [line["metadata"]["epoch_num"] for line in lines if line["key"] == "eval_accuracy"]
    assert evals == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]  # fractional epochs trained
    assert [e for e, _, _ in outcome.evals] == evals
    # one epoch per block, each block's evaluations inside its epoch
    assert [line["metadata"]["epoch_count"] for line in lines if line["key"] == "block_start"] == [1, 1]
    k = keys(lines)
    assert k.index("eval_start") < k.index("epoch_stop")
    ok, output = run_compliance_checker(log)
    assert ok, output


def test_sample_cadence_stops_mid_epoch_when_target_reached(tmp_path):
    log = tmp_path / "r.txt"
    outcome = run_once(_with_mini(SampleCadenceWorkload(), target=0.9), RunContext(seed=3), log)
    assert outcome.converged and outcome.evals[-1][2] >= 0.9
    assert outcome.samples % 128 == 0 and outcome.samples == round(outcome.evals[-1][0] * 512)
    lines = read_log(log)
    assert keys(lines)[-4:] == ["eval_stop", "epoch_stop", "block_stop", "run_stop"]
    assert lines[-1]["metadata"]["status"] == "success"


def test_no_evaluation_before_start_eval_at(tmp_path):
    log = tmp_path / "r.txt"
    outcome = run_once(_with_mini(LinearWorkload(), max_epochs=6, eval_every=2, start_eval_at=4),
                       RunContext(seed=1), log)
    assert [e for e, _, _ in outcome.evals] == [4, 6]
    blocks = [line["metadata"]["first_epoch_num"] for line in read_log(log) if line["key"] == "block_start"]
    assert blocks == [1, 3, 5]


def test_start_eval_at_beyond_the_last_epoch_still_evaluates_once(tmp_path):
    log = tmp_path / "r.txt"
    outcome = run_once(_with_mini(LinearWorkload(), max_epochs=2, start_eval_at=10), RunContext(seed=1), log)
    assert [e for e, _, _ in outcome.evals] == [2] and outcome.reason == "max epochs"


def test_only_rank_zero_writes(tmp_path):
    log = tmp_path / "r.txt"
    run_once(LinearWorkload(), RunContext(seed=1, rank=1, world_size=2), log)
    assert not log.exists() or log.read_text() == ""


@pytest.mark.parametrize("minutes, drop, expected, counted", [
    ([5, 1, 3, 4, 2], 1, 3.0, 3),              # drop fastest and slowest
    ([5, 1, 3, None, 2], 1, (2 + 3 + 5) / 3, 3),  # the non-converged run is the dropped slowest
    ([5, None, 3, None, 2], 1, None, 0),        # two failures: no score
    (list(range(1, 41)), 4, sum(range(5, 37)) / 32, 32),          # unet3d: 4 + 4
    (list(range(1, 37)) + [None] * 4, 4, sum(range(5, 37)) / 32, 32),
])
def test_olympic_score(minutes, drop, expected, counted):
    score = olympic_score(minutes, drop)
    assert score.counted == counted
    if expected is None:
        assert score.minutes is None and "did not converge" in score.reason
    else:
        assert score.minutes == pytest.approx(expected)


def test_cpu_budget_never_runs_faster_than_the_wall_clock():
    """Data-loader processes add CPU time faster than the clock runs: the budget must not
    end a run sooner than a wall-clock budget would."""
    budget = TimeBudget(0.2, "cpu")
    budget.threads = 1
    budget.start()
    budget._cpu0 -= 100.0           # as if child processes had burnt 100 CPU-s already
    assert budget.used() < 0.2 and not budget.spent()
