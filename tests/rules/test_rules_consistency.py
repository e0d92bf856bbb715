"""mlpace.rules against the official mlperf_logging, wherever both state the same fact.

The official package is the source of truth for the rules it encodes: run counts and
benchmark lists (`benchmark_meta`), quality targets and directions, divisions, availability
values and the init-time limit (the compliance checker's `training_<ruleset>/*.yaml`, whose
own check expressions are evaluated here), and the RCP checker's run counts.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlperf_logging import benchmark_meta, compliance_checker
from mlperf_logging.rcp_checker import rcp_checker

from mlpace.rules import (BENCHMARKS, MLPACE_RULESET, ROUNDS, TRAINING_AVAILABILITY,
                          DIVISIONS, init_time_limit_ms, round_for_ruleset)

CONFIGS = Path(compliance_checker.__file__).parent
V1_RULESETS = ("1.0.0", "1.1.0")           # the rounds mlpace's eight benchmarks come from


def _keys(ruleset: str, name: str) -> dict[str, dict]:
    with open(CONFIGS / f"training_{ruleset}" / name) as handle:
        return {entry["KEY"]["NAME"]: entry["KEY"] for entry in yaml.safe_load(handle) if "KEY" in entry}


def test_run_counts_match_benchmark_meta():
    counts = benchmark_meta.get_result_file_counts("training")
    for name, spec in BENCHMARKS.items():
        assert spec.runs == counts[name], name
        assert round_for_ruleset(MLPACE_RULESET).required_runs(name) == spec.runs


def test_run_counts_match_the_rcp_checker_where_it_lists_them():
    for name, runs in rcp_checker.submission_runs["training"].items():
        if name in BENCHMARKS:
            assert BENCHMARKS[name].runs == runs, name


@pytest.mark.parametrize("ruleset", V1_RULESETS)
def test_the_eight_benchmarks_are_those_of_the_v1_rounds(ruleset):
    assert set(BENCHMARKS) == set(benchmark_meta.get_allowed_benchmarks("training", ruleset))
    assert set(round_for_ruleset(ruleset).benchmarks()) == set(BENCHMARKS)


def test_every_round_is_known_to_mlperf_logging():
    allowed = benchmark_meta._ALL_ALLOWED_BENCHMARKS["training"]
    for version, ruleset, _ in ROUNDS:
        assert version in allowed and (CONFIGS / f"training_{ruleset}" / "common.yaml").is_file()
    dates = [published for _, _, published in ROUNDS]
    assert dates == sorted(dates)


def test_olympic_drop_is_the_official_one():
    # result_summarizer and rcp_checker: `4 if benchmark == 'unet3d' else 1`
    assert {n: s.olympic_drop for n, s in BENCHMARKS.items()} == {n: 4 if n == "unet3d" else 1 for n in BENCHMARKS}
    assert round_for_ruleset("3.1.0").drop("gpt3") == 1


@pytest.mark.parametrize("ruleset", V1_RULESETS)
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_reference_target_and_direction_pass_the_official_check(ruleset, name):
    """The closed config's own eval_accuracy expression accepts the target and rejects a
    value a hair worse (which also pins the metric's direction)."""
    spec = BENCHMARKS[name]
    expression = _keys(ruleset, f"closed_{name}.yaml")["eval_accuracy"]["ATLEAST_ONE_CHECK"]
    target = spec.reference.target
    step = -1e-4 if spec.direction == "max" else 1e-4
    worse = {k: t + step for k, t in target.items()} if isinstance(target, dict) else target + step
    assert eval(expression, {}, {"v": {"value": target}}), expression
    assert not eval(expression, {}, {"v": {"value": worse}}), expression


@pytest.mark.parametrize("ruleset", V1_RULESETS)
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_closed_target_check_is_the_official_expression(ruleset, name):
    """summarize applies the closed eval_accuracy check itself: same verdict at every probe."""
    spec = BENCHMARKS[name]
    expression = _keys(ruleset, f"closed_{name}.yaml")["eval_accuracy"]["ATLEAST_ONE_CHECK"]
    target = spec.reference.target
    probes = [0.0, 1e-6, 0.5, 0.999, 1.0, 1.5] + [t + d for t in
                                                   (target.values() if isinstance(target, dict) else [target])
                                                   for d in (-1e-3, 0.0, 1e-3)]
    for probe in probes:
        value = {k: probe for k in target} if isinstance(target, dict) else probe
        assert spec.closed_target_reached(value) == bool(eval(expression, {}, {"v": {"value": value}})), probe


@pytest.mark.parametrize("ruleset", V1_RULESETS)
def test_divisions_and_availability_are_the_official_ones(ruleset):
    keys = _keys(ruleset, "common.yaml")
    for key, allowed in (("submission_division", DIVISIONS),
                         ("submission_status", TRAINING_AVAILABILITY)):
        expression = keys[key]["CHECK"]
        for value in allowed:
            assert eval(expression, {}, {"v": {"value": value}}), (key, value)
        assert not eval(expression, {}, {"v": {"value": "mini"}})


@pytest.mark.parametrize("ruleset", [r for _, r, _ in ROUNDS])
@pytest.mark.parametrize("division", DIVISIONS)
def test_init_time_limit_matches_the_compliance_checker(ruleset, division):
    keys = _keys(ruleset, "common.yaml")
    limit = init_time_limit_ms(ruleset, division)
    checks = keys.get("init_stop", {}).get("CHECK", [])
    timing = [c for c in (checks if isinstance(checks, list) else [checks]) if "first_init_start" in c]
    [expression] = timing
    state = {"first_init_start": 0, "compile_time_mins": 0, "init_started": True, "run_started": False}
    unit = 1000 if ruleset == "0.6.0" else 1          # v0.6 logs stamp seconds, later ones ms
    post = keys.get("submission_division", {}).get("POST", "").strip()
    exec(post, {"enqueue_config": lambda _: None}, {"s": state, "v": {"value": division}})
    accepted = lambda ms: eval(expression, {}, {"s": state, "ll": SimpleNamespace(timestamp=ms / unit)})  # noqa: E731
    assert accepted(limit - 1) and not accepted(limit)
