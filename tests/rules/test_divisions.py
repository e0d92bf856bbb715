"""Mini-scale results are open division by construction: train, infer and package refuse
to call them closed, with one clear line, before anything is written."""

import argparse
import json
import shutil
from pathlib import Path

import pytest

from mlpace.errors import MlpaceError
from mlpace.rules.divisions import default_division, require_division_allowed

NVIDIA = Path(__file__).resolve().parents[1] / "data" / "mlperf" / "training_v1.0" / "NVIDIA"


def test_the_rule():
    require_division_allowed("reference", "closed")
    require_division_allowed("mini", "open")
    require_division_allowed("mini", None)
    with pytest.raises(MlpaceError, match="open division by construction"):
        require_division_allowed("mini", "closed")
    assert default_division("mini") == "open" and default_division("reference") == "closed"


def test_train_refuses_closed_at_mini_scale(tmp_path):
    from mlpace.harness.runs import TrainRequest, train_result
    with pytest.raises(MlpaceError, match="mini-scale results are open division"):
        train_result(TrainRequest("resnet", scale="mini", division="closed", out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_infer_refuses_closed_at_mini_scale():
    from mlpace.commands import infer
    parser = argparse.ArgumentParser()
    infer.register(parser.add_subparsers())
    args = parser.parse_args(["infer", "resnet50", "--scale", "mini", "--division", "closed"])
    with pytest.raises(MlpaceError, match="mini-scale results are open division"):
        infer._request(args)


def _train_output(tmp_path: Path, scale: str) -> Path:
    """A `mlpace train`-shaped folder: five real logs and the score.json train writes."""
    folder = tmp_path / scale / "Org" / "results" / "box" / "resnet"
    shutil.copytree(NVIDIA / "results" / "dgxa100_ngc21.05_mxnet" / "resnet", folder)
    (folder / "score.json").write_text(json.dumps({"benchmark": "resnet", "scale": scale}))
    return tmp_path / scale


def test_package_refuses_closed_for_mini_results(tmp_path):
    from mlpace.submission.package import package
    with pytest.raises(MlpaceError, match="mini-scale results are open division"):
        package([_train_output(tmp_path, "mini")], "Org", tmp_path / "out", division="closed")
    assert not (tmp_path / "out").exists()
    # The same logs at reference scale may be packaged as closed (they are logged closed).
    # (package refuses empty system-description fields: these are what a user gives by hand)
    hand = {f: "N/A" for f in ("host_processor_interconnect", "host_storage_type", "host_networking",
                               "host_networking_topology", "host_memory_configuration",
                               "accelerator_host_interconnect", "accelerator_frequency",
                               "accelerator_on-chip_memories", "accelerator_memory_configuration",
                               "accelerator_memory_capacity", "accelerator_interconnect",
                               "accelerator_interconnect_topology", "cooling", "hw_notes",
                               "host_processor_caches", "host_processor_frequency")}
    out = package([_train_output(tmp_path, "reference")], "Org", tmp_path / "out2", division="closed",
                  overrides=hand)
    assert len(list((out / "Org" / "results" / "box" / "resnet").glob("result_*.txt"))) == 5
