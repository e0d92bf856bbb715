"""MLPerf Training rounds and the scoring rules as each round had them when it was published.

The official `mlperf_logging` package only knows its *current* rules. Older rounds were scored
by the rules of their day, and those differ in ways that change published numbers:
- the compliance checker of today rejects logs that passed (with warnings) in 2021, so the
  official summarizer of today drops genuine v1.1 runs as "failed";
- RCP normalisation of scores (multiplying by RCP mean / submission mean epochs when a
  submission converges in fewer epochs than the reference) exists only from v2.1 on.
So mlpace keeps a small table of rounds, takes what did not change (benchmark lists, run
counts) from `mlperf_logging.benchmark_meta`, and states for every summary which rules it
applied (`Round.rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from mlpace.errors import MlpaceError

# (round, ruleset, date the results were published). A run belongs to the first round whose
# publication date is after the run (runs are made during the weeks before publication).
_ROUNDS = [
    ("0.6", "0.6.0", "2019-07-10"), ("0.7", "0.7.0", "2020-07-29"),
    ("1.0", "1.0.0", "2021-06-30"), ("1.1", "1.1.0", "2021-12-01"),
    ("2.0", "2.0.0", "2022-06-29"), ("2.1", "2.1.0", "2022-11-09"),
    ("3.0", "3.0.0", "2023-06-27"), ("3.1", "3.1.0", "2023-11-08"),
    ("4.0", "4.0.0", "2024-06-12"), ("4.1", "4.1.0", "2024-11-13"),
    ("5.0", "5.0.0", "2025-06-04"), ("5.1", "5.1.0", "2025-11-12"),
]
# The rules mlpace's own (mini, open-division) runs follow.
MLPACE_RULESET = "1.1.0"
# Benchmarks whose olympic mean drops more runs at each end (and tolerates as many failures).
_EXTRA_DROPS = {"unet3d": 4}


def _version_tuple(ruleset: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ruleset.split("."))


@dataclass(frozen=True)
class Round:
    version: str          # "1.0"
    ruleset: str          # "1.0.0"
    how: str              # how the round was chosen, for the summary's notes

    @property
    def rcp_normalisation(self) -> bool:
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
        return _EXTRA_DROPS.get(benchmark, 1)

    def rules(self) -> list[str]:
        """The scoring rules applied, in words, for the summary's notes."""
        lines = [
            f"training round v{self.version} (ruleset {self.ruleset}; {self.how})",
            "time-to-train = run_stop - run_start of each run whose run_stop status is success",
            "olympic mean: drop the fastest and slowest run (unet3d: 4 + 4); a run that did not "
            "converge counts as one of the slowest (at most 1, unet3d at most 4)",
        ]
        if self.rcp_normalisation:
            lines.append("closed division: scores normalised by the RCP factor (rules of v2.1 on)")
        else:
            lines.append(f"no RCP normalisation of scores (it exists only from v2.1 on; v{self.version} did not have it)")
        lines.append("a scaling.json left by the review committee multiplies the score")
        return lines


def round_for_ruleset(ruleset: str, how: str = "given") -> Round:
    for version, known, _ in _ROUNDS:
        if ruleset in (known, version, "v" + version):
            return Round(version, known, how)
    known_list = ", ".join(r for _, r, _ in _ROUNDS)
    raise MlpaceError(f"unknown training ruleset {ruleset!r}; known: {known_list}")


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
    for version, ruleset, published in _ROUNDS:
        if when < published:
            return Round(version, ruleset, f"from the run dates ({when}, before v{version} was published)")
    version = MLPACE_RULESET.rsplit(".", 1)[0]
    return Round(version, MLPACE_RULESET, f"runs made after the last known round ({when}): mlpace's rules")
