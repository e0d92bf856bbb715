"""`mlpace package`: official layouts, refusals (run counts, overwrite, unsafe names), sysinfo."""

import json
from pathlib import Path

import pytest

from mlpace.errors import MlpaceError
from mlpace.submission.check import check
from mlpace.submission.package import package
from mlpace.submission.summarize import summarize
from mlpace.submission.sysinfo import REQUIRED_FIELDS
from mlpace.io import safe_name

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf"
RESNET = FIXTURES / "training_v1.0" / "NVIDIA" / "results" / "dgxa100_ngc21.05_mxnet" / "resnet"


# The fields mlpace cannot detect on a machine: a user gives them (`package --system-desc`).
HAND_FIELDS = {name: "N/A" for name in (
    "host_processor_interconnect", "host_storage_type", "host_networking", "host_networking_topology",
    "host_memory_configuration", "accelerator_host_interconnect", "accelerator_frequency",
    "accelerator_on-chip_memories", "accelerator_memory_configuration", "accelerator_memory_capacity",
    "accelerator_interconnect", "accelerator_interconnect_topology", "cooling", "hw_notes",
    "host_processor_caches", "host_processor_frequency")}


def _mlpace_training_output(root: Path, runs: int = 5) -> Path:
    """What `mlpace train` leaves: <out>/<org>/results/<system>/<benchmark>/result_<i>.txt (open division)."""
    folder = root / "mlpace" / "results" / "cpu-box" / "resnet"
    folder.mkdir(parents=True)
    for i in range(runs):
        text = (RESNET / f"result_{i}.txt").read_text(encoding="latin-1")
        (folder / f"result_{i + 1}.txt").write_text(text.replace('"value": "closed"', '"value": "open"'),
                                                    encoding="latin-1")
    return root
def test_training_package_layout_and_check(tmp_path):
    source = _mlpace_training_output(tmp_path / "runs")
    out = package([source], "MyOrg", tmp_path / "sub", availability="cloud",
                  overrides={**HAND_FIELDS, "host_storage_type": "NVMe"})
    org = out / "MyOrg"
    files = sorted(p.name for p in (org / "results" / "cpu-box" / "resnet").iterdir())
    assert files == [f"result_{i}.txt" for i in range(5)]
    desc = json.loads((org / "systems" / "cpu-box.json").read_text())
    assert set(REQUIRED_FIELDS) <= set(desc)
    assert (desc["submitter"], desc["division"], desc["status"]) == ("MyOrg", "open", "cloud")
    assert desc["host_storage_type"] == "NVMe"
    readme = (org / "benchmarks" / "resnet" / "implementations" / "mlpace" / "README.md").read_text()
    assert "no `mlpace train` record" in readme and "11934" in readme   # no made-up command
    summary = summarize(out)
    assert summary.round.ruleset == "1.0.0"          # these runs were made in May 2021
    report = check(out, ruleset="1.1.0", workers=1)
    assert report.ok, [vars(f) for f in report.findings if f.level == "fail"]
def test_refuses_wrong_run_count_and_overwrite(tmp_path):
    source = _mlpace_training_output(tmp_path / "runs", runs=4)
    with pytest.raises(MlpaceError, match="1 result is not complete") as refused:
        package([source], "MyOrg", tmp_path / "sub")
    assert "4 runs of resnet; a result needs exactly 5" in refused.value.details[0]
    assert not (tmp_path / "sub" / "MyOrg").exists()
    source = _mlpace_training_output(tmp_path / "runs5")
    package([source], "MyOrg", tmp_path / "sub", overrides=HAND_FIELDS)
    before = (tmp_path / "sub" / "MyOrg" / "systems" / "cpu-box.json").read_text()
    with pytest.raises(MlpaceError, match="already exists"):
        package([source], "MyOrg", tmp_path / "sub", overrides=HAND_FIELDS)
    assert (tmp_path / "sub" / "MyOrg" / "systems" / "cpu-box.json").read_text() == before
def test_refuses_division_mismatch(tmp_path):
    source = _mlpace_training_output(tmp_path / "runs")
    with pytest.raises(MlpaceError, match="logged for the open division"):
        package([source], "MyOrg", tmp_path / "sub", division="closed")


def test_refuses_bad_names_and_options(tmp_path):
    with pytest.raises(MlpaceError, match="path separator"):
        package([tmp_path], "../evil", tmp_path / "sub")
    with pytest.raises(MlpaceError, match="availability"):
        package([tmp_path], "Org", tmp_path / "sub", availability="soon")
    with pytest.raises(MlpaceError, match="no training results"):
        package([tmp_path], "Org", tmp_path / "sub")
    assert safe_name("cpu-box_1.0", "system") == "cpu-box_1.0"
    for bad in ("..", "a/b", "x\x00y", ""):
        with pytest.raises(MlpaceError):
            safe_name(bad, "system")
def test_sysinfo_cli(tmp_path):
    import subprocess
    import sys
    code = ("import sys, mlpace.cli as cli; cli.COMMAND_MODULES = ['mlpace.commands.submission']; "
            "sys.exit(cli.main(sys.argv[1:]))")
    overrides = tmp_path / "o.json"
    overrides.write_text('{"cooling": "air"}')
    done = subprocess.run([sys.executable, "-c", code, "sysinfo", "--submitter", "MyOrg",
                           "--availability", "research", "--overrides", str(overrides)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    desc = json.loads(done.stdout)
    assert set(REQUIRED_FIELDS) <= set(desc)
    assert (desc["submitter"], desc["status"], desc["cooling"]) == ("MyOrg", "research", "air")
    overrides.write_text('{"colour": "red"}')
    done = subprocess.run([sys.executable, "-c", code, "sysinfo", "--overrides", str(overrides)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown system-description field" in done.stderr


def test_refuses_empty_system_fields_and_uses_the_recorded_command(tmp_path):
    """Issue 12 §5: no empty strings for fields mlpace cannot know; the README's command is
    the one `mlpace train` recorded (score.json), never a placeholder."""
    source = _mlpace_training_output(tmp_path / "runs")
    with pytest.raises(MlpaceError, match="cooling.* missing or empty"):
        package([source], "MyOrg", tmp_path / "sub", overrides={**HAND_FIELDS, "cooling": ""})
    assert not (tmp_path / "sub" / "MyOrg").exists()
    command = "mlpace train resnet --scale mini --runs 5 --seed 7 --device cpu"
    (source / "mlpace" / "results" / "cpu-box" / "resnet" / "score.json").write_text(json.dumps({"command": command}))
    out = package([source], "MyOrg", tmp_path / "sub", overrides=HAND_FIELDS)
    readme = (out / "MyOrg" / "benchmarks" / "resnet" / "implementations" / "mlpace" / "README.md").read_text()
    assert f"```\n{command}\n```" in readme
