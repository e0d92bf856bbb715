"""What `summarize` and `check` say on screen: honest columns and plain counts."""

import shutil
from pathlib import Path

from mlpace.cli import main

TRAINING = Path(__file__).resolve().parents[1] / "data" / "mlperf" / "training_v1.0"


def test_cpu_only_system_has_no_accelerators(tmp_path, capsys):
    tree = tmp_path / "training_v1.0"
    shutil.copytree(TRAINING / "Intel", tree / "Intel")
    assert main(["summarize", str(tree)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "1-node-8s-8380H" in line)
    assert "none (CPU only)" in row and "Xeon" not in row and "8380H" not in row.split("│")[4]


def test_one_result_file_is_singular(tmp_path, capsys):
    folder = tmp_path / "training_v1.0" / "NVIDIA"
    resnet = folder / "results" / "dgxa100_ngc21.05_mxnet" / "resnet"
    resnet.mkdir(parents=True)
    log = TRAINING / "NVIDIA" / "results" / "dgxa100_ngc21.05_mxnet" / "resnet" / "result_0.txt"
    # open division: the closed RCP check (not what this test is about) needs more than one run
    (resnet / "result_0.txt").write_text(log.read_text(encoding="latin-1").replace(
        '"value": "closed"', '"value": "open"'), encoding="latin-1")
    shutil.copytree(TRAINING / "NVIDIA" / "systems", folder / "systems")
    main(["summarize", str(tmp_path / "training_v1.0")])
    out = capsys.readouterr().out
    assert "1 result file;" in out and "1 result files" not in out
    main(["check", str(tmp_path / "training_v1.0"), "--no-compliance"])
    out = capsys.readouterr().out
    assert "1 result file;" in out and "1 result files" not in out



def test_rules_of_runs_newer_than_every_round_are_said_plainly():
    from mlpace.rules.rounds import round_from_time
    how = round_from_time(4_000_000_000_000).how     # 2096: after every known round
    assert how.startswith("the runs date from 2096-") and "the last round mlpace knows" in how
    assert "rules that mlpace's own runs follow" in how and "last known round (" not in how
