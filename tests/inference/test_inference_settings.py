"""mlperf.conf / user.conf handling: parsing traps, lookup order, the v1.1 values, TestSettings."""

from pathlib import Path

import pytest

from mlpace.errors import MlpaceError
from mlpace.inference import settings as conf
from mlpace.submission.loadgen_log import parse_summary_file

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf" / "inference_v1.1"


def test_parse_conf_strips_comments_and_spacing():
    text = ("# header\n\n  resnet50.Server.target_qps=120 # trailing comment\n"
            "*.*.qsl_rng_seed   =   7\nbert.*.target_latency = 130\t\n")
    assert conf.parse_conf(text) == {"resnet50.Server.target_qps": "120", "*.*.qsl_rng_seed": "7",
                                     "bert.*.target_latency": "130"}


@pytest.mark.parametrize("line", ["resnet50.Server.target_qps", "resnet50.target_qps = 3",
                                  "resnet50.Server.target_qps =", "a b.Server.x = 1"])
def test_parse_conf_rejects_malformed_lines_with_location(line):
    with pytest.raises(MlpaceError, match=r"user.conf:2"):
        conf.parse_conf("# ok\n" + line + "\n", "user.conf")


def test_lookup_order_is_loadgens():
    values = {"*.*.k": "1", "m.*.k": "2", "*.S.k": "3", "m.S.k": "4"}
    assert conf.lookup(values, "m", "S", "k") == "4"
    del values["m.S.k"]
    assert conf.lookup(values, "m", "S", "k") == "3"   # scenario beats model wildcard, as in LoadGen
    del values["*.S.k"]
    assert conf.lookup(values, "m", "S", "k") == "2"
    assert conf.lookup(values, "other", "X", "k") == "1"
    assert conf.lookup(values, "m", "S", "missing") is None


def test_user_conf_overrides_rules_and_is_limited_to_user_keys(tmp_path):
    path = conf.write_user_conf(tmp_path / "m" / "user.conf", "resnet50", "Server", {"target_qps": 55.5})
    resolved = conf.resolve("resnet50", "Server", conf.parse_conf(path.read_text()))
    assert resolved.values["target_qps"] == "55.5"
    assert resolved.values["target_latency"] == "15"             # resnet50's own Server bound
    with pytest.raises(MlpaceError, match="may not set qsl_rng_seed"):
        conf.user_conf_text("resnet50", "Server", {"qsl_rng_seed": 1})


def test_unknown_scenario_is_an_error():
    with pytest.raises(MlpaceError, match="unknown scenario"):
        conf.resolve("resnet50", "Batch", {})


def test_test_settings_carry_the_values_and_survive_repeated_use():
    import mlperf_loadgen as lg

    for _ in range(2):   # FromConfig would skip mlperf.conf the second time; this must not
        resolved = conf.resolve("bert", "Server", {"bert.Server.target_qps": "12"})
        s = conf.to_test_settings(resolved, "performance")
        assert s.scenario == lg.TestScenario.Server and s.mode == lg.TestMode.PerformanceOnly
        assert s.server_target_latency_ns == 130_000_000
        assert s.server_target_latency_percentile == pytest.approx(0.99)
        assert s.server_target_qps == 12.0
        assert s.min_duration_ms == 600_000 and s.min_query_count == 270336
        assert s.qsl_rng_seed == 1624344308455410291
    single = conf.to_test_settings(conf.resolve("resnet50", "SingleStream", {}), "accuracy")
    assert single.mode == lg.TestMode.AccuracyOnly
    assert single.single_stream_target_latency_percentile == pytest.approx(0.90)
    multi = conf.to_test_settings(conf.resolve("resnet50", "MultiStream", {}), "performance")
    assert multi.multi_stream_samples_per_query == 8


def test_bad_number_is_a_clear_error():
    with pytest.raises(MlpaceError, match="not a number"):
        conf.to_test_settings(conf.resolve("resnet50", "Offline", {"*.Offline.target_qps": "fast"}),
                              "performance")


def test_shipped_rules_match_the_published_v1_1_results():
    """The seeds, durations, query counts and latency bounds are those v1.1 submitters ran with."""
    checked = 0
    for path in sorted(FIXTURES.glob("closed/*/results/*/*/*/performance/run_1/mlperf_log_summary.txt")):
        summary = parse_summary_file(path)
        model = path.parts[-5].rsplit("-99", 1)[0]
        scenario = summary["scenario"]
        if scenario not in ("Server", "Offline", "SingleStream") or model == "3d-unet":
            continue
        used = summary["settings"]
        resolved = conf.resolve(model, scenario, {})
        assert used["qsl_rng_seed"] == int(resolved.values["qsl_rng_seed"])
        assert used["schedule_rng_seed"] == int(resolved.values["schedule_rng_seed"])
        assert used["min_duration (ms)"] == int(resolved.values["min_duration"])
        # user.conf may raise the performance sample count above the rule, never lower it
        assert used["performance_sample_count"] >= int(resolved.values["performance_sample_count_override"])
        if scenario == "Server":
            assert used["target_latency (ns)"] == int(resolved.values["target_latency"]) * 1_000_000
            assert used["min_query_count"] == int(resolved.values["min_query_count"])
        checked += 1
    assert checked >= 10


def test_expected_duration_bounds_the_watchdog():
    quick = conf.resolve("resnet50", "Server", {"*.Server.target_qps": "100", "*.Server.min_duration": "1000",
                                                "*.Server.min_query_count": "500"})
    assert conf.expected_duration_s(quick, "performance", 1000) == pytest.approx(5.0)
    offline = conf.resolve("resnet50", "Offline", {"*.Offline.target_qps": "1000"})
    assert conf.expected_duration_s(offline, "performance", 100) == pytest.approx(660.0)
