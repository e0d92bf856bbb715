"""A complete training result: N seeded runs in the official layout, and their score.

    <out>/<org>/systems/<system>.json                      system description (official fields)
    <out>/<org>/results/<system>/<benchmark>/result_<i>.txt  one MLPerf log per run
    <out>/<org>/results/<system>/<benchmark>/score.json      mlpace's summary of the runs
    <out>/<org>/results/<system>/<benchmark>/mlpace_config.json  the resolved config

A log is written under a hidden temporary name and renamed to `result_<i>.txt` once the run
has ended (successfully or aborted), so a result folder never holds a half-written result
file, and existing results are never touched unless the user asks for `overwrite`.
"""

from __future__ import annotations

import os
import random
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlpace.benchmarks import make_workload
from mlpace.harness import distributed
from mlpace.errors import MlpaceError
from mlpace.harness.config import config_dict
from mlpace.harness.timed_run import Progress, RunOutcome, StopRequest, Submitter, run_once
from mlpace.harness.workload import RunContext
from mlpace.io import json_text, refuse_linked_folders, safe_name, write_atomic
from mlpace.rules.benchmarks import BenchmarkSpec
from mlpace.rules.divisions import default_division, require_division_allowed
from mlpace.rules.rounds import MLPACE_RULESET as RULESET
from mlpace.submission.scoring import Score, olympic_score
from mlpace.submission.sysinfo import capture_system_description
from mlpace.words import plural


class RunInterrupted(MlpaceError):
    exit_code = 130


@dataclass
class TrainRequest:
    benchmark: str
    scale: str = "mini"
    runs: int = 1
    out: Path = Path("mlpace-results")
    org: str = "mlpace"
    system: str | None = None
    seed: int | None = None                 # base seed; None draws one at random
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    system_overrides: dict[str, Any] = field(default_factory=dict)
    division: str | None = None             # default: open for mini, closed for reference
    availability: str = "onprem"            # onprem | cloud | preview | research
    overwrite: bool = False
    max_epochs: int | None = None
    time_budget_s: float | None = None


@dataclass
class ResultSet:
    spec: BenchmarkSpec
    scale: str
    result_dir: Path
    system_file: Path
    seeds: list[int]
    outcomes: list[RunOutcome]
    score: Score | None                     # None unless the run count makes a complete result
    base_seed: int = 0                      # the seed every run's seed derives from

    @property
    def complete(self) -> bool:
        return len(self.outcomes) == self.spec.runs


def run_seeds(base: int, n: int) -> list[int]:
    """n well-spread 31-bit seeds derived from one base seed (reproducible)."""
    return [int(s) for s in np.random.SeedSequence(base).generate_state(n) % (2**31 - 1)]


def _prepare_dirs(req: TrainRequest, system: str) -> tuple[Path, Path]:
    result_dir = Path(req.out) / req.org / "results" / system / req.benchmark
    systems_dir = Path(req.out) / req.org / "systems"
    refuse_linked_folders(req.out, [Path(req.org) / "results" / system / req.benchmark,
                                    Path(req.org) / "systems"])
    try:
        result_dir.mkdir(parents=True, exist_ok=True)
        systems_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=result_dir, prefix=".probe-")
        probe.close()
    except OSError as err:
        raise MlpaceError(f"cannot write results under {req.out}: {err.strerror or err}") from None
    existing = sorted(result_dir.glob("result_*.txt"))
    if existing and not req.overwrite:
        raise MlpaceError(f"{result_dir} already holds {plural(len(existing), 'result file')}; "
                          "choose another --out or pass --overwrite")
    return result_dir, systems_dir / f"{system}.json"


def reproduce_command(req: TrainRequest, base_seed: int) -> str:
    """The command line that repeats this result (seeds included), for the submission README."""
    parts = ["mlpace", "train", req.benchmark, "--scale", req.scale, "--runs", str(req.runs),
             "--seed", str(base_seed), "--device", req.device.split(":")[0]]
    parts += [f"--set {shlex.quote(f'{k}={v}')}" for k, v in req.overrides.items()]
    if req.max_epochs is not None:
        parts += ["--max-epochs", str(req.max_epochs)]
    if req.time_budget_s is not None:
        parts += ["--time-budget", f"{req.time_budget_s:g}"]
    return " ".join(parts)


def _score_record(req: TrainRequest, spec: BenchmarkSpec, seeds: list[int],
                  outcomes: list[RunOutcome], score: Score | None, base_seed: int) -> dict:
    return {
        "benchmark": spec.name, "scale": req.scale, "metric": spec.metric,
        "ruleset": RULESET, "command": reproduce_command(req, base_seed), "base_seed": base_seed,
        "target": spec.scale(req.scale).target, "required_runs": spec.runs,
        "runs": [{"index": i, "seed": s, "status": o.status, "reason": o.reason,
                  "seconds": o.seconds, "cpu_seconds": round(o.cpu_seconds, 3),
                  "epochs": o.epochs, "samples": o.samples,
                  "quality": o.quality, "log": o.log_path.name if o.log_path else None}
                 for i, (s, o) in enumerate(zip(seeds, outcomes))],
        "score_minutes": score.minutes if score else None,
        "score_note": (score.reason if score else
                       f"{len(outcomes)} of {spec.runs} runs: not a complete result"),
    }


def train_result(req: TrainRequest,
                 progress_for: Callable[[int], Progress] | None = None,
                 announce: Callable[[int, str], None] | None = None) -> ResultSet:
    """Run `req.runs` seeded runs of one benchmark and write the result (see module doc).

    `announce(base_seed, reproduce_command)` is called once before the first run, so that
    the seed of a run is known (and the run repeatable) even if it never finishes.
    Under torchrun or `--nproc-per-node` every rank calls this; only rank 0 writes files.
    """
    with distributed.process_group(req.device) as placement:
        return _train_result(req, progress_for, announce, placement)


def _train_result(req: TrainRequest, progress_for, announce, placement: dict) -> ResultSet:
    lead = placement["rank"] == 0
    require_division_allowed(req.scale, req.division)
    workloads = [make_workload(req.benchmark, req.scale, req.overrides)]  # validates early
    distributed.check_supported(workloads[0], placement["world_size"])
    spec = workloads[0].spec
    description = capture_system_description(
        req.system, submitter=req.org,
        division=req.division or default_division(req.scale),
        status=req.availability)
    description.update(req.system_overrides)
    system = safe_name(str(description["system_name"]), "system name")   # becomes a folder
    result_dir = Path(req.out) / req.org / "results" / system / req.benchmark
    system_file = Path(req.out) / req.org / "systems" / f"{system}.json"
    if lead:
        result_dir, system_file = _prepare_dirs(req, system)
        write_atomic(system_file, json_text(description, indent=4))
        # strict JSON: a config may hold infinity (rnnt's clip_norm: no clipping), written null
        write_atomic(result_dir / "mlpace_config.json", json_text(config_dict(workloads[0].config)))
    base = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
    base = distributed.broadcast(base, RunContext(**placement))   # one seed for all ranks
    seeds = run_seeds(base, req.runs)
    if lead and announce:
        announce(base, reproduce_command(req, base))
    submitter = Submitter(org=req.org, platform=system,
                          division=description["division"], status=req.availability)
    outcomes: list[RunOutcome] = []
    score: Score | None = None
    with StopRequest() as stop:
        for i, seed in enumerate(seeds):
            workload = workloads.pop() if workloads else make_workload(req.benchmark, req.scale, req.overrides)
            final = result_dir / f"result_{i}.txt"
            partial = result_dir / f".result_{i}.txt.partial"
            ctx = RunContext(seed=seed, data_dir=_data_dir(req), **placement)
            try:
                outcome = run_once(workload, ctx, partial if lead else None, submitter,
                                   progress=progress_for(i) if progress_for and lead else None,
                                   time_budget_s=req.time_budget_s, max_epochs=req.max_epochs,
                                   stop=stop, after_init=lambda: distributed.barrier(ctx))
            except BaseException:
                # A run that died after run_start ended its log with run_stop aborted: keep it
                # as a result file, in plain sight. One that died in init is not a run.
                if lead and partial.exists() and '"key": "run_stop"' in partial.read_text():
                    os.replace(partial, final)
                raise
            if lead:                # only rank 0 writes the log and the score
                os.replace(partial, final)
                outcome.log_path = final
            outcomes.append(outcome)
            if len(outcomes) == spec.runs:
                score = olympic_score([o.seconds / 60 if o.converged else None for o in outcomes],
                                      spec.olympic_drop)
            if lead:
                write_atomic(result_dir / "score.json",
                             json_text(_score_record(req, spec, seeds, outcomes, score, base)))
            if stop.requested:
                raise RunInterrupted(f"interrupted: {plural(len(outcomes), 'run')} finished, logs in {result_dir}")
    return ResultSet(spec, req.scale, result_dir, system_file, seeds, outcomes, score, base)


def _data_dir(req: TrainRequest) -> Path:
    from mlpace.harness.datasets import data_root
    return data_root(req.data_dir)
