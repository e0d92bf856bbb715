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


def _dlrm_offline(rate: float) -> "conf.ResolvedSettings":
    """dlrm Offline at the v1.1 minimums (600 s, 24,576 samples, 204,800 performance samples),
    target_qps as `mlpace infer --submission` sets it from a measured rate (x 1.05)."""
    from mlpace.inference.peak import OFFLINE_MARGIN
    return conf.resolve("dlrm", "Offline", {"dlrm.Offline.target_qps": str(rate * OFFLINE_MARGIN),
                                            "dlrm.Offline.performance_sample_count_override": "204800"})


def test_a_full_length_dlrm_offline_submission_is_judged_by_the_memory_it_needs(monkeypatch):
    """A system serving 45k dlrm samples/s (dlrm-mini did when a sample was one line): its
    full-length Offline query holds ~30 M samples, ~12 GiB by the measured cost. A guard at 1 KiB a sample on half of the
    physical memory refused it on a 23 GiB machine; with 16 GiB available it fits, with 8 not."""
    settings = _dlrm_offline(45_000)
    assert conf.scheduled_samples(settings) == pytest.approx(45_000 * 1.05 * 600 * 1.1)
    monkeypatch.setattr(conf, "available_memory_bytes", lambda: 16 * 2**30)
    conf.validate(settings)
    monkeypatch.setattr(conf, "available_memory_bytes", lambda: 8 * 2**30)
    with pytest.raises(MlpaceError, match=r"3.12e\+07 samples .* about 11.6 GiB; this machine's memory allows"):
        conf.validate(settings)
    # Server at the v1.1 minimum query count is small whatever the rate
    server = conf.resolve("dlrm", "Server", {"dlrm.Server.target_qps": "100"})
    assert conf.scheduled_samples(server) == 270_336
    conf.validate(server)


_MEASURE = """
import sys
from pathlib import Path
import numpy as np
from mlpace.inference.runner import RunOptions, run_test
from mlpace.inference.task import InferenceTask
answer = np.zeros(1, np.float32)
task = InferenceTask(name="toy", loadgen_model="dlrm", total=1000, load=lambda i: i,
                     predict=lambda samples: [answer] * len(samples), output_dtype="float32",
                     score=lambda outputs: 1.0, metric="AUC", reference_score=1.0, max_batch=4096)
samples = int(sys.argv[2])
record = run_test(task, "Offline", "performance", RunOptions(
    out=Path(sys.argv[1]), system="m", workers=1, max_batch=4096, test_minimums={},
    user_settings={"target_qps": samples / 1.1, "min_duration": 1000, "min_query_count": 1,
                   "performance_sample_count_override": 1000}))
assert record["error"] is None, record
# VmHWM: this process's own peak (ru_maxrss would also count the parent's size at the fork)
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_schedule_memory_estimate_covers_what_a_run_takes(tmp_path):
    """Peak memory of Offline runs of 0.5 M and 1.5 M samples (LoadGen and the SUT, a model
    that answers at once): the cost per extra sample stays within SCHEDULE_BYTES_PER_SAMPLE."""
    import subprocess
    import sys

    peaks = []
    for samples in (500_000, 1_500_000):
        done = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / str(samples)), str(samples)],
                              capture_output=True, text=True, timeout=280)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(int(done.stdout.split()[-1]))
    per_sample = (peaks[1] - peaks[0]) / 1_000_000
    assert 50 < per_sample <= conf.SCHEDULE_BYTES_PER_SAMPLE, per_sample
