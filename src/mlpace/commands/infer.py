"""`mlpace infer`: MLPerf Inference benchmarks on the official LoadGen (mlpace.inference)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.io import out_folder
from mlpace.rules.divisions import DIVISIONS, require_division_allowed
from mlpace.rules.inference import SCENARIOS as SCENARIO_CHOICES   # the rules are data: cheap to import


def register(subparsers) -> None:
    """Add the `infer` verb."""
    p = subparsers.add_parser(
        "infer", help="serve a model under LoadGen (scenarios, performance/accuracy modes)",
        description="Run MLPerf Inference v1.1 benchmarks through the official LoadGen and write "
                    "the results in the official inference layout.")
    p.add_argument("benchmark", nargs="?", help="resnet50, ssd-mobilenet, ssd-resnet34, bert, dlrm, 3d-unet, rnnt")
    p.add_argument("--all", action="store_true", help="every available benchmark")
    p.add_argument("--scenario", action="append", choices=SCENARIO_CHOICES,
                   help="repeatable; default: every v1.1 scenario of the benchmark")
    p.add_argument("--mode", choices=["performance", "accuracy", "both"], default="performance")
    p.add_argument("--quick", action="store_true",
                   help="short runs (seconds); results are marked not valid for submission")
    p.add_argument("--find-peak", action="store_true",
                   help="search the highest Server QPS (and Offline expected QPS) that stays valid")
    p.add_argument("--submission", action="store_true",
                   help="everything one v1.1 result needs: measured settings, the full-length "
                        "performance run, the accuracy run, the TEST01/TEST04/TEST05 audits and "
                        "their verification (35-50 min per benchmark and scenario)")
    p.add_argument("--scale", choices=["mini", "reference"], default="mini")
    p.add_argument("--data-dir", type=out_folder, help="data root (default: mlpace's data cache)")
    p.add_argument("--checkpoint", type=Path, help="model weights (state_dict); required at reference scale")
    p.add_argument("--backend", choices=["auto", "torch", "torch-compile", "onnxruntime"], default="auto",
                   help="auto (default): onnxruntime for fp32 on the CPU where the benchmark "
                        "exports to ONNX (rnnt and 3d-unet do not), else torch")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="bf16/fp16 autocast (CUDA only)")
    p.add_argument("--threads", type=int, default=0, help="torch/ORT threads (default: all cores)")
    p.add_argument("--workers", type=int, help="SUT worker threads (default: one per two cores)")
    p.add_argument("--max-batch", type=int, help="largest dynamic batch (default: per benchmark)")
    p.add_argument("--target-qps", type=float, help="user.conf target_qps (Server, Offline)")
    p.add_argument("--target-latency", type=float, help="user.conf target_latency in ms (SingleStream, MultiStream)")
    p.add_argument("--accuracy-target", choices=["99", "99.9"], default="99",
                   help="percent of the FP32 score (99.9 exists for bert, dlrm, 3d-unet)")
    p.add_argument("--limit", type=int, help="use only the first N samples of the data set")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_options",
                   help="mini scale: a training config key for the mini model and its data (repeatable)")
    p.add_argument("--timeout", type=float, help="watchdog: seconds before a run is ended as ERROR")
    p.add_argument("--out", type=out_folder, default=Path("mlpace-results"), help="output root")
    p.add_argument("--division", choices=DIVISIONS, default="open")
    p.add_argument("--org", default="mlpace")
    p.add_argument("--system", help="system name (default: derived from this machine)")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of a table")
    p.set_defaults(handler=run_infer)


def _request(args: argparse.Namespace):
    import os

    from mlpace.harness.config import parse_set_options
    from mlpace.inference.settings import check_value
    from mlpace.inference.models import INFERENCE_BENCHMARKS, BuildOptions, available
    from mlpace.inference.runner import RunOptions
    from mlpace.inference.suite import InferRequest
    from mlpace.io import safe_name
    from mlpace.submission.sysinfo import default_system_name

    require_division_allowed(args.scale, args.division)
    if args.all == bool(args.benchmark):
        raise MlpaceError("name one benchmark, or pass --all")
    names = [n for n in INFERENCE_BENCHMARKS if available(n)] if args.all else [args.benchmark]
    if not names:
        raise MlpaceError("no inference benchmark is available in this mlpace")
    _check_options(args)
    _refuse_links_in_out(args.out, Path(args.division) / args.org)
    user = {}
    if args.target_qps is not None:
        user["target_qps"] = check_value("target_qps", args.target_qps, "--target-qps: ")
    if args.target_latency is not None:
        user["target_latency"] = check_value("target_latency", args.target_latency, "--target-latency: ")
    threads = args.threads or os.cpu_count() or 1
    return InferRequest(
        benchmarks=names, scenarios=args.scenario,
        modes=["performance", "accuracy"] if args.mode == "both" else [args.mode],
        build=BuildOptions(scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint,
                           backend=args.backend, device=args.device, precision=args.precision,
                           threads=threads, limit=args.limit,
                           train_overrides=parse_set_options(args.set_options)),
        run=RunOptions(out=args.out, division=args.division, org=args.org,
                       system=safe_name(args.system or default_system_name(), "system"), quick=args.quick,
                       workers=args.workers, max_batch=args.max_batch, timeout_s=args.timeout,
                       user_settings=user),
        find_peak=args.find_peak, submission=args.submission, target_fraction=round(float(args.accuracy_target) / 100, 6))   # 0.999, not 0.9990000000000001


def _refuse_links_in_out(out: Path, base: Path) -> None:
    """Every folder infer may write into under an existing --out must be a real one: a link
    there (`out/open -> /elsewhere`) would take the results outside --out."""
    from mlpace.io import refuse_linked_folders
    below = [p.relative_to(out) for p in (out / base).rglob("*") if p.is_symlink() or p.is_dir()] \
        if (out / base).is_dir() and not (out / base).is_symlink() else []
    refuse_linked_folders(out, [base, *below])


def _check_options(args: argparse.Namespace) -> None:
    """Numbers and names before anything runs or is written (see docs/security.md)."""
    from mlpace.harness.config import check_count
    from mlpace.inference.watchdog import check_timeout
    from mlpace.io import safe_name
    safe_name(args.org, "--org")
    if args.system is not None:
        safe_name(args.system, "--system")
    for option, value, low, high in (("--limit", args.limit, 1, 10**9),
                                     ("--threads", args.threads, 0, 4096),
                                     ("--workers", args.workers, 1, 4096),
                                     ("--max-batch", args.max_batch, 1, 65536)):
        if value is not None:
            check_count(option, value, low, high)
    if args.timeout is not None:
        check_timeout(args.timeout)


def run_infer(args: argparse.Namespace) -> int:
    import json

    from mlpace.inference.suite import TABLE_HEADER, infer, table_rows

    request = _request(args)
    records = infer(request, log=lambda line: None if args.json else print(line, flush=True))
    if args.json:
        print(json.dumps(records, indent=2, default=str))
    else:
        from rich.console import Console
        from rich.table import Table
        table = Table(*TABLE_HEADER, title="mlpace infer")
        for row in table_rows(records):
            table.add_row(*row)
        Console().print(table)
        if args.quick:
            print("* quick run: shortened durations, not valid for submission")
        if args.submission:
            print("audit rows (TEST0x): PASS/FAIL is the verification's verdict; files in "
                  "<out>/<division>/<org>/compliance/")
        print(f"results: {request.run.out}")
    bad = [r for r in records if r.get("result") in ("ERROR", "FAIL") or r.get("error")]
    return 1 if bad else 0
