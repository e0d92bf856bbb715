"""MLPerf Training rounds, and the scoring rules as each round had them when it was published.

The official `mlperf_logging` package only knows its *current* rules. Older rounds were scored
by the rules of their day, and those differ in ways that change published numbers:
- the compliance checker of today rejects logs that passed (with warnings) in 2021, so the
  official summarizer of today drops genuine v1.1 runs as "failed";
- the limit on initialisation time (first `init_start` to `init_stop`) changed: 20 min in
  v0.6/v0.7, 30 min in v1.0/v1.1, and from v2.0 on 30 min closed / 240 min open
  (`training_<ruleset>/common.yaml` of the compliance checker). A run over the limit fails
  compliance, and the official summarizer scores a failing run as a failed (dropped) one;
  so does a closed run none of whose evaluations reaches the round's target, whatever its
  `run_stop` status says (the reference targets of rules.benchmarks are those of v1.0/v1.1);
- RCP normalisation: from v2.1 on the RCP checker computes a normalisation factor for a
  closed result that converges in fewer epochs than the reference. The published tables
  multiply a score only by a `scaling.json` that sits in the result folder *before* the
  summarizer runs: the official summarizer computes the score first and only then runs the
  RCP checker, which writes its factor to `scaling.json` for the review committee. So a
  score is the olympic mean times the committee's `scaling.json`, never times a factor
  mlpace computes itself (this reproduces MLCommons' v3.1 table; docs/submission.md).
So mlpace keeps a small table of rounds, takes what did not change (benchmark lists, run
counts) from `mlperf_logging.benchmark_meta`, and states for every summary which rules it
applied (`Round.rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from mlpace.errors import MlpaceError
from mlpace.rules.benchmarks import BENCHMARKS

# (round, ruleset, date the results were published). A run belongs to the first round whose
# publication date is after the run (runs are made during the weeks before publication).
ROUNDS = [
    ("0.6", "0.6.0", "2019-07-10"), ("0.7", "0.7.0", "2020-07-29"),
    ("1.0", "1.0.0", "2021-06-30"), ("1.1", "1.1.0", "2021-12-01"),
    ("2.0", "2.0.0", "2022-06-29"), ("2.1", "2.1.0", "2022-11-09"),
    ("3.0", "3.0.0", "2023-06-27"), ("3.1", "3.1.0", "2023-11-08"),
    ("4.0", "4.0.0", "2024-06-12"), ("4.1", "4.1.0", "2024-11-13"),
    ("5.0", "5.0.0", "2025-06-04"), ("5.1", "5.1.0", "2025-11-12"),
]
# The rules mlpace's own runs follow: the ruleset every log and score.json of mlpace names.
MLPACE_RULESET = "1.1.0"
# Rulesets whose weights_initialization checks were warnings when the round was published
# and are errors in today's mlperf-logging (check reports them as warnings, see check.py).
WEIGHTS_INIT_DRIFT = {"1.1.0"}
# The official summarizer drops this many runs at each end, and tolerates as many failed
# runs, for benchmarks that are not among mlpace's eight (its `max_dropped_scores`).
DEFAULT_DROP = 1
# Rounds whose closed quality targets are the reference targets of mlpace.rules.benchmarks.
TARGET_RULESETS = ("1.0.0", "1.1.0")
# Benchmarks that never had reference convergence points (RCPs) in any round.
NO_RCP = {"minigo"}
MINUTE_MS = 60 * 1000.0


def _version_tuple(ruleset: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ruleset.split("."))


def init_time_limit_ms(ruleset: str, division: str | None) -> float:
    """The compliance checker's limit on first init_start -> init_stop (exclusive).

    From `training_<ruleset>/common.yaml`: `ll.timestamp - s['first_init_start'] < limit`.
    """
    version = _version_tuple(ruleset)
    if version < (1, 0, 0):
        return 20 * MINUTE_MS
    if version < (2, 0, 0):
        return 30 * MINUTE_MS
    return (240 if division == "open" else 30) * MINUTE_MS


@dataclass(frozen=True)
class Round:
    version: str          # "1.0"
    ruleset: str          # "1.0.0"
    how: str              # how the round was chosen, for the summary's notes

    @property
    def has_rcp_checks(self) -> bool:
        """Whether closed results of this round go through the seed and RCP checkers (v1.0 on)."""
        return _version_tuple(self.ruleset) >= (1, 0, 0)

    @property
    def has_rcp_factor(self) -> bool:
        """Whether the RCP checker of this round computes a normalisation factor (v2.1 on)."""
        return _version_tuple(self.ruleset) >= (2, 1, 0)

    def benchmarks(self) -> list[str]:
        from mlperf_logging.benchmark_meta import get_allowed_benchmarks
        try:
            return list(dict.fromkeys(get_allowed_benchmarks("training", self.ruleset)))
        except (KeyError, ValueError):
            return []

    def required_runs(self, benchmark: str) -> int | None:
        from mlperf_logging.benchmark_meta import get_result_file_counts
        return get_result_file_counts("training").get(benchmark)

    @staticmethod
    def drop(benchmark: str) -> int:
        spec = BENCHMARKS.get(benchmark)
        return spec.olympic_drop if spec else DEFAULT_DROP

    def closed_target(self, benchmark: str):
        """The BenchmarkSpec whose reference target closed runs of this round must reach, or
        None where mlpace does not state the round's targets (rounds other than v1.0/v1.1)."""
        return BENCHMARKS.get(benchmark) if self.ruleset in TARGET_RULESETS else None

    def init_limit_ms(self, division: str | None) -> float:
        return init_time_limit_ms(self.ruleset, division)

    def rules(self) -> list[str]:
        """The scoring rules applied, in words, for the summary's notes."""
        lines = [
            f"training round v{self.version} (ruleset {self.ruleset}; {self.how})",
            "time-to-train = run_stop - run_start of each run whose run_stop status is success",
            "olympic mean: drop the fastest and slowest run (unet3d: 4 + 4); a failed run (not "
            "converged, or breaking a rule below) counts as one of the slowest (at most 1, unet3d 4)",
        ]
        closed, open_ = self.init_limit_ms("closed"), self.init_limit_ms("open")
        limit = f"{closed / MINUTE_MS:g} min" if closed == open_ else \
            f"{closed / MINUTE_MS:g} min closed, {open_ / MINUTE_MS:g} min open"
        lines.append(f"a run whose init_start -> init_stop is not under {limit} fails compliance "
                     "and counts as a failed run, as in the official summarizer")
        if self.ruleset in TARGET_RULESETS:
            lines.append("a closed run counts only if one evaluation reaches the round's target "
                         "(whatever its run_stop status says), as in the compliance checker")
        lines.append("a run whose times are impossible (run_stop before run_start, non-finite "
                     "or absurd time_ms) is invalid and counts as a failed run")
        if self.has_rcp_factor:
            lines.append("a scaling.json in the folder (the review committee's) multiplies the score; "
                         "the RCP checker's own normalisation factor does not, as in the published "
                         "tables (`mlpace check` reports it)")
        else:
            lines.append(f"no RCP normalisation (it exists only from v2.1 on; v{self.version} did not "
                         "have it); a scaling.json left by the review committee multiplies the score")
        return lines


def round_for_ruleset(ruleset: str, how: str = "given") -> Round:
    for version, known, _ in ROUNDS:
        if ruleset in (known, version, "v" + version):
            return Round(version, known, how)
    known_list = ", ".join(r for _, r, _ in ROUNDS)
    raise MlpaceError(f"unknown training ruleset {ruleset!r}; known: {known_list}")


MLPACE_ROUND_VERSION = MLPACE_RULESET.rsplit(".", 1)[0]
_FOLDER_HINT = re.compile(r"(?:training|results)[_-]?(?:results[_-])?v(\d+\.\d+)", re.I)


def round_from_path(path: str) -> Round | None:
    """The round named by a folder such as `training_v1.0` or `training_results_v1.1`."""
    for match in _FOLDER_HINT.finditer(str(path)):
        try:
            return round_for_ruleset(match.group(1), how=f"from the folder name {match.group(0)!r}")
        except MlpaceError:
            continue
    return None


def round_from_time(run_start_ms: float) -> Round:
    """The round a run made at this time was submitted to (mlpace's rules after the last one)."""
    when = datetime.fromtimestamp(run_start_ms / 1000, tz=timezone.utc).date().isoformat()
    for version, ruleset, published in ROUNDS:
        if when < published:
            return Round(version, ruleset, f"from the run dates ({when}, before v{version} was published)")
    last, _, published = ROUNDS[-1]
    # No round to take the rules from: the runs are scored as mlpace's own runs are made.
    return Round(MLPACE_ROUND_VERSION, MLPACE_RULESET,
                 f"the runs date from {when}, after v{last} (published {published}), the last round "
                 f"mlpace knows; so they are scored by the v{MLPACE_ROUND_VERSION} rules that "
                 "mlpace's own runs follow")


# Run dates outside these bounds are not dates (a corrupt or hostile time_ms): ignored.
_EARLIEST_MS, _LATEST_MS = 1.5e12, 4.1e12      # 2017 .. 2099


def pick_round(root: str | Path, ruleset: str | None, run_starts_ms: Iterable[float | None],
               named: str | None = None) -> Round:
    """The round whose rules score a tree: `ruleset` (--ruleset; must be known), else the round
    a caller read from the tree's layout (`named`; ignored when unknown), else the folder name
    (training_v1.0), else the run dates, else mlpace's own rules."""
    if ruleset:
        return round_for_ruleset(ruleset, how="given with --ruleset")
    if named:
        try:
            return round_for_ruleset(named, how=f"round v{named} named by the tree")
        except MlpaceError:
            pass
    hinted = round_from_path(str(Path(root).resolve()))
    if hinted:
        return hinted
    starts = [s for s in run_starts_ms if s is not None and _EARLIEST_MS < s < _LATEST_MS]
    if starts:
        return round_from_time(min(starts))
    return round_for_ruleset(MLPACE_RULESET, how="the logs carry no run dates to tell their round: "
                              "scored by the rules mlpace's own runs follow")
