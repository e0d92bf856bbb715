"""The one call to the official RCP checker (reference convergence points), in-process.

`rcp_verdict(folder, ruleset)` runs `mlperf_logging.rcp_checker.check_directory` the way the
official package checker does (pruned RCPs, no bypass) and never writes into the folder
(`set_scaling=False`). Its outcome says whether the checker *ran*: a closed result whose RCP
check could not run (no RCP data, a checker error) has no RCP pass.

BERT's RCPs count training samples: a BERT result that fails when its samples are read from
`epoch_num` is checked again reading `train_samples`, the package checker's
`--rcp_bert_train_samples` option (NVIDIA's published v1.0 BERT passes only that way).

Drift: today's rcp_checker lost the run counts of the benchmarks it no longer lists (dlrm of
v1.0-v2.1), and fails on them with a KeyError although the RCP data of those rounds ships
with it; mlpace gives the count back from `mlperf_logging.benchmark_meta` (the same number).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from mlpace.rules.rounds import NO_RCP


@dataclass(frozen=True)
class RcpVerdict:
    ran: bool              # False: no RCP data or the checker failed; `message` says why
    passed: bool
    message: str
    factor: float = 1.0    # the checker's normalisation factor (>= 1; rounds v2.1 on use it)

    @property
    def applicable(self) -> bool:
        return self.message != NOT_APPLICABLE


NOT_APPLICABLE = "no RCPs exist for this benchmark"


def _restore_run_count(rcp_checker, benchmark: str) -> None:
    from mlperf_logging.benchmark_meta import get_result_file_counts
    runs = rcp_checker.submission_runs["training"]
    if benchmark not in runs and benchmark in get_result_file_counts("training"):
        runs[benchmark] = get_result_file_counts("training")[benchmark]


def rcp_verdict(folder: str | Path, ruleset: str, benchmark: str) -> RcpVerdict:
    """The official RCP checker's verdict on one result folder (see the module doc)."""
    if benchmark in NO_RCP:
        return RcpVerdict(True, True, NOT_APPLICABLE)
    from mlperf_logging.rcp_checker import rcp_checker
    _restore_run_count(rcp_checker, benchmark)
    # The checker logs through the module-level logging functions, which would install a
    # stderr handler on the root logger for good if it had none: give it a silent one.
    silent = logging.NullHandler()
    logging.getLogger().addHandler(silent)
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")        # numpy's "mean of empty slice" on 1-2 runs
            passed, message, factor = rcp_checker.check_directory(
                str(folder), "training", ruleset, False, False, rcp_pass="pruned_rcps",
                set_scaling=False)
            if not passed and benchmark == "bert":
                # BERT's RCPs count samples; logs whose epoch_num is not a sample count are
                # checked from `train_samples`, as the package checker's
                # --rcp_bert_train_samples lets a submitter do (NVIDIA v1.0 needs it).
                by_samples = rcp_checker.check_directory(
                    str(folder), "training", ruleset, False, True, rcp_pass="pruned_rcps",
                    set_scaling=False)
                if by_samples[0]:
                    passed, message, factor = by_samples[0], \
                        f"{by_samples[1]} (samples counted from train_samples)", by_samples[2]
    except FileNotFoundError:
        return RcpVerdict(False, False, f"mlperf-logging has no RCP data for {benchmark} in ruleset {ruleset}")
    except KeyError as err:
        return RcpVerdict(False, False, f"mlperf-logging has no RCP data for {err} in ruleset {ruleset}")
    except Exception as err:  # noqa: BLE001 - the official checker fails in many ways on odd trees
        return RcpVerdict(False, False, f"the RCP checker could not run ({type(err).__name__}: {err})")
    finally:
        logging.disable(logging.NOTSET)
        logging.getLogger().removeHandler(silent)
    return RcpVerdict(True, bool(passed), str(message), float(factor))
