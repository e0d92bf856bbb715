"""unet3d: KiTS19-layout loader, DICE and sliding window, the model learning, and the MLPerf log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.unet3d import data as kits
from mlpace.benchmarks.unet3d.metrics import dice_score, gaussian_kernel, sliding_window_inference
from mlpace.benchmarks.unet3d.model import UNet3D, mlperf_tensor_names
from mlpace.errors import MlpaceError
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

# The mini data and model, with fewer cases: 4 steps of 4 patches an epoch.
TINY = {"train_cases": 16, "eval_cases": 2}
CLOSED_RULES = (Path(__import__("mlperf_logging").__file__).parent
                / "compliance_checker" / "training_1.1.0" / "closed_unet3d.yaml")


def test_loader_reads_generated_kits19_layout(tmp_path):
    kits.generate_mini(tmp_path, train_cases=3, eval_cases=2, shape=(24, 20, 16))
    assert (tmp_path / "case_00000" / "imaging.nii.gz").is_file()
    train, held_out = kits.list_cases(tmp_path)
    assert [c.name for c in held_out] == ["case_00003", "case_00004"]
    x, y, spacing = kits.read_case(train[0])
    assert x.shape == y.shape == (24, 20, 16) and spacing == pytest.approx(kits.TARGET_SPACING)
    assert set(np.unique(y)) <= {0, 1, 2} and (y == 1).any()
    assert x[y == 1].mean() > x[y == 0].mean()      # contrast-enhanced kidney is bright
    px, py = kits.preprocess(x, y, spacing, (32, 32, 32))
    assert px.shape == py.shape == (32, 32, 32)       # padded to the patch size
    assert px.min() >= (kits.CLIP_HU[0] - kits.MEAN_HU) / kits.STD_HU - 1e-6
    assert (py == 1).sum() == (y == 1).sum()


def test_preprocess_resamples_to_target_spacing():
    x = np.zeros((10, 12, 12), np.float32)
    y = np.zeros((10, 12, 12), np.uint8)
    px, _ = kits.preprocess(x, y, (3.2, 0.6, 1.2), (1, 1, 1))
    assert px.shape == (20, 6, 12)


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(MlpaceError, match="no KiTS19 cases"):
        kits.list_cases(tmp_path)
    kits.generate_mini(tmp_path, train_cases=1, eval_cases=1, shape=(16, 16, 16))
    (tmp_path / kits.EVAL_LIST).write_text("case_00099\n")
    with pytest.raises(MlpaceError, match="case_00099"):
        kits.list_cases(tmp_path)


def test_dice_matches_hand_computed_value():
    target = torch.zeros(1, 4, 1, 1, dtype=torch.long)
    target[0, :, 0, 0] = torch.tensor([1, 1, 2, 0])
    # predicted labels 1, 0, 2, 2: kidney |P∩G|=1, |P|=1, |G|=2 -> 2/3; tumour 1, 2, 1 -> 2/3
    logits = torch.zeros(1, 3, 4, 1, 1)
    for voxel, cls in enumerate([1, 0, 2, 2]):
        logits[0, cls, voxel] = 5.0
    scores = dice_score(logits, target)
    assert scores.shape == (1, 2)
    assert scores[0].tolist() == pytest.approx([2 / 3, 2 / 3], abs=1e-6)
    # a class absent from both prediction and truth counts as perfect (the reference's smoothing)
    assert dice_score(torch.zeros(1, 3, 4, 1, 1).index_fill_(1, torch.tensor([0]), 1.0),
                      torch.zeros(1, 4, 1, 1, dtype=torch.long))[0].tolist() == pytest.approx([1, 1])


def test_sliding_window_reassembles_a_whole_volume():
    identity = lambda x: torch.cat([x, 2 * x, -x], dim=1)   # noqa: E731 - a "model" per voxel
    image = torch.randn(1, 1, 20, 17, 24)
    label = torch.zeros(1, 20, 17, 24, dtype=torch.long)
    out, cropped = sliding_window_inference(identity, image, label, roi=8, overlap=0.5, batch_size=3)
    # remainders under half a stride are cropped off (17 % 4 = 1), larger ones padded
    assert out.shape[2:] == cropped.shape[1:] == (20, 16, 24)
    assert torch.allclose(out[0, 1], 2 * image[0, 0, :, :16], atol=1e-5)
    kernel = gaussian_kernel(8, 1.0)
    assert kernel.max() == 1.0 and kernel[0, 0, 0] < kernel[4, 4, 4]


def test_model_names_match_closed_rules():
    expected = re.findall(r'"(\w+)"', CLOSED_RULES.read_text().split("END:")[1].split("- KEY")[0])
    assert sorted(mlperf_tensor_names(UNet3D())) == sorted(expected)
    out = UNet3D(filters=(4, 8, 16))(torch.zeros(2, 1, 16, 16, 16))
    assert out.shape == (2, 3, 16, 16, 16)


def test_reference_config_logs_closed_rule_keys(tmp_path):
    w = make_workload("unet3d", "reference", {"data_path": str(tmp_path)})
    w.model = UNet3D()
    w.steps_per_epoch = 84
    keys = set(w.hyperparameters())
    closed = set(re.findall(r"NAME:\s+(\w+)", CLOSED_RULES.read_text()))
    logged_by_harness = {"weights_initialization", "train_samples", "eval_samples", "eval_accuracy", "seed"}
    assert closed - logged_by_harness <= keys
    assert w.hyperparameters()["global_batch_size"] == 2
    assert w.hyperparameters()["opt_base_learning_rate"] == 0.8
    assert w.scale_spec.target == 0.908
    with pytest.raises(MlpaceError, match="KiTS19"):
        make_workload("unet3d", "reference", {}).prepare_data(tmp_path)


@pytest.mark.slow
def test_tiny_run_learns_and_log_passes_compliance_checker(tmp_path, data_root):
    w = make_workload("unet3d", "mini", TINY)
    log = tmp_path / "unet3d.log"
    untrained = []
    outcome = run_once(w, RunContext(seed=3, data_dir=data_root), log, max_epochs=5,
                       after_init=lambda: untrained.append(w.dice_per_class()))
    kidney, _ = w.dice_per_class().tolist()
    assert untrained[0][0] < 0.2 and kidney > 0.45, (untrained, kidney, outcome.evals)
    ok, out = run_compliance_checker(log)
    assert ok, out
    lines = [json.loads(l.split(":::MLLOG", 1)[1]) for l in log.read_text().splitlines() if ":::MLLOG" in l]
    keys = {l["key"] for l in lines}
    assert {"oversampling", "validation_overlap", "weights_initialization"} <= keys
    assert [l["value"] for l in lines if l["key"] == "train_samples"] == [16]
