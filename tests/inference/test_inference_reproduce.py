"""The `mlpace infer` command recorded with each result (for the submission README) is exact:
parsed again by the real CLI, it asks for the same run."""

import argparse
import shlex
from pathlib import Path

from mlpace.commands import infer as infer_command
from mlpace.inference.suite import reproduce_command


def _parse(argv: list[str]):
    parser = argparse.ArgumentParser()
    infer_command.register(parser.add_subparsers())
    return infer_command._request(parser.parse_args(argv))


def test_recorded_command_parses_back_to_the_same_request(tmp_path):
    argv = ["infer", "bert", "--scenario", "Offline", "--mode", "both", "--accuracy-target", "99.9",
            "--backend", "onnxruntime", "--threads", "3", "--workers", "2", "--max-batch", "16",
            "--target-qps", "123.5", "--set", "seq_len=64", "--set", "name=two words", "--quick",
            "--data-dir", str(tmp_path / "my data"), "--system", "box", "--org", "Org",
            "--out", str(tmp_path / "out")]
    request = _parse(argv)
    command = reproduce_command(request, "bert", "Offline")
    words = shlex.split(command)
    assert words[:3] == ["mlpace", "infer", "bert"]
    again = _parse(words[1:] + ["--out", str(tmp_path / "out")])
    assert again.build == request.build and again.modes == request.modes
    assert again.target_fraction == request.target_fraction and again.scenarios == ["Offline"]
    assert again.run == request.run and again.find_peak == request.find_peak
    assert Path(str(tmp_path / "my data")) == again.build.data_dir
