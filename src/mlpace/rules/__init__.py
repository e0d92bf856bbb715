"""Every MLPerf rule mlpace applies, as data, in one place.

    benchmarks  the eight training benchmarks: targets, run counts, olympic drops, directions
    rounds      training rounds and rulesets, era differences (init-time limit, RCP scaling),
                the ruleset mlpace's logs follow, and how a tree's round is chosen
    divisions   divisions and availability categories (training and inference vocabularies),
                scales, and which scale may claim the closed division
    rcp         the one call to the official RCP checker
    inference   inference v1.1: scenarios, accuracy targets, minimum durations and query counts

Nothing else in mlpace states one of these facts; everything reads it from here. Importing
this package is cheap (no torch, no mlperf_logging until a function needs it).
"""

from mlpace.rules import inference  # noqa: F401 - the inference v1.1 rules, as rules.inference
from mlpace.rules.benchmarks import BENCHMARKS, BenchmarkSpec, ScaleSpec, get_spec
from mlpace.rules.divisions import (AVAILABILITY_SPELLINGS, DIVISIONS, INFERENCE_DIVISION_FOLDERS,
                                    SCALES, TRAINING_AVAILABILITY, default_division,
                                    require_division_allowed)
from mlpace.rules.rounds import (MLPACE_RULESET, ROUNDS, Round, init_time_limit_ms, pick_round,
                                 round_for_ruleset, round_from_path, round_from_time)

__all__ = [
    "inference",
    "BENCHMARKS", "BenchmarkSpec", "ScaleSpec", "get_spec",
    "AVAILABILITY_SPELLINGS", "DIVISIONS", "INFERENCE_DIVISION_FOLDERS", "SCALES",
    "TRAINING_AVAILABILITY",
    "default_division", "require_division_allowed",
    "MLPACE_RULESET", "ROUNDS", "Round", "init_time_limit_ms", "pick_round",
    "round_for_ruleset", "round_from_path", "round_from_time",
]
