"""LoadGen settings are checked before LoadGen sees them, and every test is under a watchdog.

The bad settings ran in a child process: before the fix they aborted in C++, segfaulted,
died of SIGBUS or grew memory for minutes, which would take pytest down with them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlpace import cli
from mlpace.errors import MlpaceError
from mlpace.inference import settings as conf

pytestmark = pytest.mark.timeout(300)
HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _child(tmp_path: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE.parent / "inference")])}
    return subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_error_line(done: subprocess.CompletedProcess, *words):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("scenario,key,value", [
    ("Server", "target_qps", -5), ("Server", "target_qps", 0), ("Offline", "target_qps", -5),
    ("Offline", "target_qps", 1e12), ("Server", "target_qps", math.inf), ("Server", "target_qps", 1e12),
    ("Server", "target_qps", math.nan), ("SingleStream", "target_latency", -1),
    ("MultiStream", "target_latency", 0), ("Offline", "min_duration", -1),
    ("SingleStream", "min_query_count", 0), ("Server", "max_async_queries", 1.5),
])
def test_bad_loadgen_settings_end_in_one_line_before_loadgen_runs(tmp_path, scenario, key, value):
    done = _child(tmp_path, f"""
        import sys
        from pathlib import Path
        from toy_task import toy_task
        from mlpace.errors import MlpaceError
        from mlpace.inference.runner import RunOptions, run_test
        options = RunOptions(out=Path(sys.argv[1]) / "out", quick=True, system="box",
                             user_settings={{{key!r}: float({str(value)!r})}})
        try:
            run_test(toy_task(), {scenario!r}, "performance", options)
        except MlpaceError as err:
            print(f"error: {{err}}", file=sys.stderr)
            sys.exit(2)
        """)
    _one_error_line(done, key)


@pytest.mark.parametrize("scenario,values", [
    ("Offline", {"target_qps": "1e7", "min_duration": "600000"}),
    ("Server", {"target_qps": "1e7", "min_duration": "600000"}),
    ("SingleStream", {"target_latency": "0.00001", "min_duration": "86400000"}),
    ("MultiStream", {"target_latency": "0.001", "samples_per_query": "1000000", "min_duration": "600000"}),
])
def test_a_schedule_larger_than_memory_is_refused(scenario, values):
    resolved = conf.resolve("resnet50", scenario, {f"*.{scenario}.{k}": v for k, v in values.items()})
    with pytest.raises(MlpaceError, match="memory allows"):
        conf.validate(resolved)


def test_the_official_settings_of_every_model_pass():
    rules = conf.parse_conf(conf.rules_text(), "mlperf.conf")
    for model in ("resnet50", "ssd-mobilenet", "ssd-resnet34", "bert", "dlrm", "rnnt", "3d-unet"):
        for scenario in conf.SCENARIOS:
            conf.validate(conf.resolve(model, scenario, {f"*.{scenario}.target_qps": "1000"}, rules))


@pytest.mark.parametrize("argv,words", [
    (["--scenario", "Server", "--target-qps", "-5"], "--target-qps"),
    (["--scenario", "Offline", "--target-qps", "1e12"], "--target-qps"),
    (["--scenario", "Server", "--target-qps", "nan"], "--target-qps"),
    (["--scenario", "SingleStream", "--target-latency", "-1"], "--target-latency"),
    (["--timeout", "-1"], "--timeout"), (["--timeout", "inf"], "--timeout"),
    (["--max-batch", "0"], "--max-batch"), (["--workers", "0"], "--workers"),
])
def test_infer_options_are_checked_before_anything_runs(tmp_path, capsys, argv, words):
    code = cli.main(["infer", "resnet50", "--quick", "--out", str(tmp_path / "OUT"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not (tmp_path / "OUT").exists()


def test_the_watchdog_ends_a_loadgen_test_that_never_returns(tmp_path):
    """A SUT that never answers: LoadGen waits in C++, where Python cannot interrupt it."""
    done = _child(tmp_path, """
        import sys
        import mlperf_loadgen as lg
        from mlpace.inference.watchdog import Watchdog

        sut = lg.ConstructSUT(lambda queries: None, lambda: None)     # never answers
        qsl = lg.ConstructQSL(8, 8, lambda s: None, lambda s: None)
        settings = lg.TestSettings()
        settings.scenario = lg.TestScenario.Offline
        settings.mode = lg.TestMode.PerformanceOnly
        settings.min_duration_ms, settings.min_query_count = 100, 1
        log = lg.LogSettings()
        log.log_output.outdir = sys.argv[1]
        log.log_output.copy_summary_to_stdout = False
        Watchdog(2.0, "toy LoadGen test")
        lg.StartTestWithLogSettings(sut, qsl, settings, log, sys.argv[1] + "/audit.config")
        print("LoadGen returned")
        """, timeout=60)
    _one_error_line(done, "toy LoadGen test", "watchdog")
    assert "LoadGen returned" not in done.stdout


def test_a_cancelled_watchdog_never_fires():
    import time

    from mlpace.inference.watchdog import Watchdog
    with Watchdog(0.2, "quick work"):
        pass
    time.sleep(0.4)          # still alive: the process was not ended


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, 10**9])
def test_timeouts_must_be_finite_and_positive(value):
    from mlpace.inference.watchdog import check_timeout
    with pytest.raises(MlpaceError, match="--timeout"):
        check_timeout(value)
