"""`mlpace list`, `mlpace train`, `mlpace validate`, `mlpace suite`: the training side of the CLI."""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import out_folder
from mlpace.rules.divisions import TRAINING_AVAILABILITY, DIVISIONS

TRAIN_EXIT_CODES = """exit codes:
  0    at least one run reached the target
  1    every run ended without reaching the target (aborted: epochs or time budget spent)
  2    bad input or environment (one `error:` line says what)
  3    a distributed run lost a rank (died, hung or disconnected)
  130  interrupted (Ctrl-C or SIGTERM); finished runs' logs are kept"""

SUITE_EXIT_CODES = """exit codes:
  0    every benchmark reached its target
  1    at least one benchmark did not (the last line says which and why)
  2    bad input or environment (one `error:` line says what)
  130  interrupted (Ctrl-C or SIGTERM); finished runs' logs are kept

The last line is the verdict: how many converged, what did not and why, wall and CPU time."""


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="the eight MLPerf Training benchmarks and their targets")
    p.set_defaults(handler=cmd_list)

    p = subparsers.add_parser("train", help="train one benchmark to its quality target",
                              epilog=TRAIN_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", help="resnet, ssd, maskrcnn, bert, dlrm, minigo, rnnt or unet3d")
    _add_run_options(p)
    p.add_argument("--runs", type=int, default=1,
                   help="seeded runs (a complete MLPerf result: 5, 10 or 40 by benchmark)")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine (torch's elastic launcher)")
    p.add_argument("--nnodes", type=int, default=1, help="machines in the run (each runs this command)")
    p.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                   help="rendezvous of a multi-node run: node 0's host and a free port")
    p.set_defaults(handler=cmd_train)

    p = subparsers.add_parser("validate", help="smoke-test one benchmark: a few steps on tiny data at "
                              "each scale, then the official compliance checker on the log",
                              epilog="exit codes:\n  0    every check passed\n  1    a check failed\n"
                                     "  2    bad input (one `error:` line says what)",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", help="resnet, ssd, maskrcnn, bert, dlrm, minigo, rnnt or unet3d")
    p.add_argument("--scale", choices=["mini", "reference", "both"], default="both")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (the GPU path: bf16 autocast)")
    p.set_defaults(handler=cmd_validate)

    p = subparsers.add_parser("suite", help="every implemented benchmark, one run each",
                              epilog=SUITE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_run_options(p)
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma-separated benchmarks to run (default: all implemented at --scale)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="benchmarks run side by side, each in its own process with its share of the "
                        "cores (default: one single-thread process per core on CPU, which finishes the "
                        "mini suite sooner than one process using every thread; 1: in turn, one process)")
    p.set_defaults(handler=cmd_suite)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=["mini", "reference"], default="mini")
    p.add_argument("--out", type=out_folder, default=None,
                   help="results folder (default: mlpace-results/<date-time>)")
    p.add_argument("--org", default="mlpace", help="submitter name (submission_org)")
    p.add_argument("--system", default=None, help="system name (default: host_accelerator_pytorch)")
    p.add_argument("--system-desc", default=None, metavar="JSON",
                   help="file of system-description fields overriding the detected ones")
    p.add_argument("--seed", type=int, default=None, help="base seed (default: random, printed)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--config", default=None, metavar="FILE", help="JSON/YAML file of config overrides")
    p.add_argument("--data-dir", type=out_folder, default=None,
                   help="where data sets live (default: $MLPACE_DATA or the user cache folder)")
    p.add_argument("--division", choices=DIVISIONS, default=None)
    p.add_argument("--availability", choices=TRAINING_AVAILABILITY, default="onprem")
    p.add_argument("--max-epochs", type=int, default=None, help="abort after this many epochs")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="abort a run when its timed region has used this long (on CPU: this process's "
                        "CPU time per torch thread, so other jobs do not cut it short; on CUDA: wall clock)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--db", default=None,
                   help="results store to record the result in (SQLAlchemy URL or file; default: "
                        "$MLPACE_DB, else results.sqlite in the user data folder)")
    p.add_argument("--no-store", action="store_true", help="do not record the result in the store")


def _resolve_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MlpaceError(f"--device {name}: no CUDA device is available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise MlpaceError(f"--device must be cpu, cuda, cuda:N or auto, not {name!r}")
    return name


def _check_options(args, runs: int) -> None:
    """Names that become paths and numbers that reach a run, before anything is written."""
    import math

    from mlpace.harness.config import check_count
    from mlpace.io import safe_name
    if runs < 1:
        raise MlpaceError("--runs must be at least 1")
    check_count("--runs", runs, 1, 1000)
    safe_name(args.org, "--org")
    if args.system is not None:
        safe_name(args.system, "--system")
    if args.max_epochs is not None:
        check_count("--max-epochs", args.max_epochs, 0, 10**6)
    if args.seed is not None:
        check_count("--seed", args.seed, 0, 2**63 - 1)
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise MlpaceError(f"--time-budget must be a finite number of seconds above 0, not {args.time_budget!r}")
    for option in ("nproc_per_node", "nnodes"):
        if getattr(args, option, None) is not None:
            check_count(f"--{option.replace('_', '-')}", getattr(args, option), 1, 4096)


def _request(args, benchmark: str, runs: int, suite: bool = False):
    from mlpace.harness.config import load_config_file, parse_set_options
    from mlpace.training.runs import TrainRequest
    from mlpace.submission.sysinfo import load_overrides
    _check_options(args, runs)
    overrides = {**load_config_file(args.config), **parse_set_options(args.overrides)}
    if suite:  # in a suite, keys name their benchmark: resnet.batch_size=64
        plain = [k for k in overrides if "." not in k]
        if plain:
            raise MlpaceError(f"in a suite, config keys name their benchmark (e.g. resnet.{plain[0]}=...)")
        overrides = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.split(".", 1)[0] == benchmark}
    out = args.out or Path("mlpace-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    return TrainRequest(
        benchmark=benchmark, scale=args.scale, runs=runs, out=out, org=args.org,
        system=args.system, seed=args.seed, device=_resolve_device(args.device),
        overrides=overrides, data_dir=args.data_dir,
        system_overrides=load_overrides(args.system_desc), division=args.division,
        availability=args.availability, overwrite=args.overwrite,
        max_epochs=args.max_epochs, time_budget_s=args.time_budget)


def _announcer(console, label: str = ""):
    """Prints the base seed and the command that repeats the run, before it starts."""
    def announce(base_seed: int, command: str) -> None:
        console.print(f"{label}base seed {base_seed}; reproduce: {command}", highlight=False,
                      soft_wrap=True)
    return announce


def _progress_factory(args, console):
    if args.quiet:
        return None
    from mlpace.harness.progress import RichProgress
    return lambda i: RichProgress(console, label=f"run {i} | ")


def cmd_list(args) -> int:
    from mlpace.console import make_console as Console
    from rich.table import Table
    from mlpace.benchmarks import list_benchmarks
    from mlpace.harness.progress import format_quality
    table = Table(title="MLPerf Training v1.0/v1.1 benchmarks")
    for col in ("benchmark", "area", "metric", "reference: model / target", "mini: target (untrained)",
                "runs", "drop", "implemented"):
        table.add_column(col)
    for row in list_benchmarks():
        spec = row["spec"]
        mini = spec.mini
        table.add_row(
            spec.name, spec.area, f"{spec.metric} ({'higher' if spec.direction == 'max' else 'lower'} is better)",
            f"{spec.reference.model} / {format_quality(spec.reference.target)}",
            f"{format_quality(mini.target)} ({format_quality(mini.untrained_quality)})",
            str(spec.runs), str(spec.olympic_drop), ", ".join(row["scales"]) or "-")
    Console().print(table)
    return 0


def cmd_validate(args) -> int:
    from mlpace.training.validate import validate
    scales = ("mini", "reference") if args.scale == "both" else (args.scale,)
    result = validate(args.benchmark, scales, device=_resolve_device(args.device))
    for check in result.checks:
        print(check.line(), flush=True)
    print(result.verdict())
    return 0 if result.passed else 1


def cmd_train(args) -> int:
    if args.nproc_per_node > 1 or args.nnodes > 1:
        from mlpace.harness.distributed import launch
        args.out = _request(args, args.benchmark, args.runs).out  # check options before spawning
        return launch(_train, (args,), args.nproc_per_node, args.nnodes, args.rdzv_endpoint)
    return _train(args)


def _train(args) -> int:
    """One process's share of `mlpace train` (all of it, or one rank of a distributed run)."""
    from mlpace.console import make_console as Console
    from mlpace.harness.distributed import placement_from_env
    from mlpace.training.runs import train_result
    from mlpace.training.result_tables import print_result
    console = Console()
    req = _request(args, args.benchmark, args.runs)
    result = train_result(req, _progress_factory(args, Console(stderr=True)), _announcer(console))
    if placement_from_env()[0] == 0:   # rank 0 reports and records, the other ranks are silent
        print_result(console, result)
        _record(args, req.out)
    return 0 if any(o.converged for o in result.outcomes) else 1


def cmd_suite(args) -> int:
    from mlpace.console import make_console as Console
    from mlpace.benchmarks import list_benchmarks, make_workload
    from mlpace.training.result_tables import print_suite, suite_verdict
    from mlpace.training.runs import RunInterrupted
    from mlpace.training.suite import default_workers, run_suite
    from mlpace.harness.timed_run import process_cpu_seconds
    from mlpace.words import plural
    console = Console()
    wall0, cpu0 = time.monotonic(), process_cpu_seconds()
    names = [r["name"] for r in list_benchmarks() if args.scale in r["scales"]]
    if args.only is not None:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        if not wanted:      # `--only ""` would otherwise run every benchmark
            raise MlpaceError(f"--only {args.only!r} names no benchmark (e.g. --only resnet,bert)")
        missing = [n for n in wanted if n not in names]
        if missing:
            raise MlpaceError(f"--only: {', '.join(missing)} not implemented at the {args.scale} scale "
                              f"(implemented: {', '.join(names) or 'none'})")
        names = wanted
    if not names:
        raise MlpaceError(f"no benchmark implements the {args.scale} scale yet")
    out = args.out or Path("mlpace-results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out = out
    if args.seed is None:   # one base seed for the whole suite, so one command repeats it
        args.seed = random.SystemRandom().randrange(2**31)
    requests = [_request(args, name, 1, suite=True) for name in names]
    if args.workers is not None:
        from mlpace.harness.config import check_count
        check_count("--workers", args.workers, 1, 256)
    _check_suite_keys(args, names)
    for req in requests:   # every benchmark's config is checked before the first run starts
        make_workload(req.benchmark, req.scale, req.overrides)
    console.print(f"suite base seed {args.seed}; reproduce: {_suite_command(args, names)}",
                  highlight=False, soft_wrap=True)
    workers = args.workers or default_workers(len(requests), requests[0].device)
    suite = run_suite(requests, workers,
                      progress_for=lambda name: _progress_factory(args, Console(stderr=True)),
                      announce_for=lambda name: _announcer(console, f"{name}: "),
                      say=lambda line: console.print(line, highlight=False, soft_wrap=True))
    if suite.results:
        print_suite(console, suite.results)
    if suite.interrupted or suite.not_run:   # say what the suite did before it was stopped, then stop
        console.print(suite_verdict(suite.results, time.monotonic() - wall0, process_cpu_seconds() - cpu0,
                                    interrupted=suite.interrupted, not_run=suite.not_run),
                      highlight=False, soft_wrap=True)
        raise RunInterrupted(f"interrupted: {plural(len(suite.results), 'benchmark')} finished, "
                             f"logs in {out}")
    _record(args, out)
    console.print(suite_verdict(suite.results, time.monotonic() - wall0, process_cpu_seconds() - cpu0),
                  highlight=False, soft_wrap=True)
    return 0 if all(r.outcomes[0].converged for r in suite.results) else 1


def _check_suite_keys(args, names: list[str]) -> None:
    """A key naming no benchmark of the suite (a misspelt resnt.batch_size) would go unused."""
    from mlpace.harness.config import load_config_file, parse_set_options
    keys = {**load_config_file(args.config), **parse_set_options(args.overrides)}
    stray = [k for k in keys if k.split(".", 1)[0] not in names]
    if stray:
        raise MlpaceError(f"config key {stray[0]} names no benchmark of this suite ({', '.join(names)})")


def _suite_command(args, names: list[str]) -> str:
    """The `mlpace suite` command that repeats this suite (each benchmark prints its own too)."""
    import shlex
    parts = ["mlpace", "suite", "--scale", args.scale, "--seed", str(args.seed)]
    if args.only:
        parts += ["--only", ",".join(names)]
    if args.device != "auto":
        parts += ["--device", args.device]
    if args.config:
        parts += ["--config", shlex.quote(args.config)]
    parts += [f"--set {shlex.quote(item)}" for item in args.overrides or []]
    if args.max_epochs is not None:
        parts += ["--max-epochs", str(args.max_epochs)]
    if args.time_budget is not None:
        parts += ["--time-budget", f"{args.time_budget:g}"]
    if args.workers is not None:   # a worker's torch threads change its float rounding
        parts += ["--workers", str(args.workers)]
    return " ".join(parts)


def _record(args, out: Path) -> None:
    """File the new results in the results store, as `mlpace import OUT` would."""
    if args.no_store:
        return
    from mlpace.results.importers import import_trees
    from mlpace.results.store import open_store
    store = open_store(args.db)
    report = import_trees(store, [str(out)])
    for problem in report.problems:
        print(f"warning: {problem}")
    print(f"recorded in the results store {store.shown_url} ({report.added} added beside "
          f"earlier results, {report.unchanged} already there); see `mlpace results --all`, "
          "`mlpace report --out site/`")
