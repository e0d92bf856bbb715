"""`mlpace package` of the suite's output (one run per benchmark): a short message, one line
per incomplete result, and the command that makes a complete one."""

from pathlib import Path

from mlpace.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "mlperf" / "training_v1.0" / "NVIDIA" / "results"


def _one_run_each(root: Path) -> Path:
    """What `mlpace suite` leaves: one open-division run of each benchmark."""
    for benchmark, system in (("resnet", "dgxa100_ngc21.05_mxnet"), ("bert", "dgxa100_ngc21.05_pytorch")):
        folder = root / "mlpace" / "results" / "cpu-box" / benchmark
        folder.mkdir(parents=True)
        text = (FIXTURES / system / benchmark / "result_0.txt").read_text(encoding="latin-1")
        (folder / "result_0.txt").write_text(text.replace('"value": "closed"', '"value": "open"'),
                                             encoding="latin-1")
    return root


def test_incomplete_results_one_line_each_with_the_command(tmp_path, capsys):
    source = _one_run_each(tmp_path / "runs")
    code = main(["package", str(source), "--org", "MyOrg", "--out", str(tmp_path / "sub")])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2 and not (tmp_path / "sub" / "MyOrg").exists()
    assert lines[0].startswith("error: not packaged: ") and len(lines[0]) < 160, lines[0]
    assert "2 results are not complete" in lines[0]
    resnet = next(line for line in lines if "/resnet:" in line)
    bert = next(line for line in lines if "/bert:" in line)
    assert "1 run of resnet; a result needs exactly 5" in resnet and "`mlpace train resnet --runs 5`" in resnet
    assert "1 run of bert; a result needs exactly 10" in bert and "`mlpace train bert --runs 10`" in bert
    assert lines[1].startswith("  ") and len(lines) == 4   # the two results, then the hint
