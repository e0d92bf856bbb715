"""Mask R-CNN: RoIAlign and mask pasting by hand, the official checker, the closed keys, learning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

import mlperf_logging
from mlpace.benchmarks import coco, make_workload
from mlpace.benchmarks.maskrcnn import model as maskrcnn_model
from mlpace.benchmarks.maskrcnn.model import (FrozenBatchNorm2d, maskrcnn_mini, maskrcnn_resnet50_fpn, roi_align,
                                              roi_align_batch)
from mlpace.benchmarks.maskrcnn.workload import paste_masks
from mlpace.harness.datasets import cached_dataset
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

CLOSED_RULES = (Path(mlperf_logging.__file__).parent / "compliance_checker" / "training_1.1.0"
                / "closed_maskrcnn.yaml")


@pytest.fixture(scope="module")
def tiny_coco(data_root) -> Path:
    return cached_dataset(data_root, "coco-scenes-maskrcnn-test-8x4", coco.MINI_VERSION,
                          lambda d: coco.generate_scenes(d, 8, 4, size=64, max_objects=3))


def test_roi_align_samples_the_box_bilinearly():
    # a feature map whose value is the x coordinate of the pixel centre (x + 0.5)
    feature = (torch.arange(8.0) + 0.5).expand(1, 8, 8).clone()
    # box x 2..6 on a stride-1 map, 2 bins: bin centres at x = 3 and 5
    out = roi_align(feature, 1.0, torch.tensor([[2.0, 0.0, 6.0, 8.0]]), size=2)
    assert torch.allclose(out[0, 0], torch.tensor([[3.0, 5.0], [3.0, 5.0]]), atol=1e-5)
    # on a stride-2 map the same image box reads feature x 1..3 (values are in feature units)
    out = roi_align(feature, 2.0, torch.tensor([[2.0, 0.0, 6.0, 8.0]]), size=2)
    assert torch.allclose(out[0, 0, 0], torch.tensor([1.5, 2.5]), atol=1e-5)


def test_training_roi_align_matches_grid_sample_values_and_gradients(monkeypatch):
    """Training on small maps takes the separable (matrix product) form: same crops and same
    gradients as grid_sample, boxes partly outside the map and in several images included."""
    torch.manual_seed(0)
    features = torch.randn(3, 4, 16, 16, requires_grad=True)
    boxes = torch.tensor([[-6.0, 3.0, 20.0, 30.0], [10.0, 10.0, 70.0, 66.0], [0.0, 0.0, 64.0, 64.0],
                          [33.3, 5.5, 40.1, 9.9], [1.0, 50.0, 30.0, 63.0]])
    image = torch.tensor([0, 2, 2, 0, 1])
    weights = torch.randn(5, 4, 7, 7)

    def crops_and_grad():
        out = roi_align_batch(features, 4.0, boxes, image, 7)
        (grad,) = torch.autograd.grad((out * weights).sum(), features)
        return out.detach(), grad

    separable = crops_and_grad()
    monkeypatch.setattr(maskrcnn_model, "_separable_pays", lambda features: False)
    grid = crops_and_grad()
    assert torch.allclose(separable[0], grid[0], atol=1e-5)
    assert torch.allclose(separable[1], grid[1], atol=1e-5)


def test_frozen_batchnorm_is_a_fixed_affine_map_in_training_too():
    bn = FrozenBatchNorm2d(2).train()
    bn.weight.copy_(torch.tensor([2.0, 1.0]))
    bn.running_mean.copy_(torch.tensor([1.0, 0.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.randn(3, 2, 4, 4)
    expected = torch.stack([(x[:, 0] - 1.0) * 2.0 / 2.0, x[:, 1]], 1)
    assert torch.allclose(bn(x), expected) and list(bn.parameters()) == []
    assert torch.equal(bn.running_mean, torch.tensor([1.0, 0.0]))       # statistics never move


def test_reference_backbone_is_maskrcnn_benchmarks():
    """No classifier, frozen BatchNorm, stem + first stage frozen, stride in the first 1x1."""
    with torch.device("meta"):
        model = maskrcnn_resnet50_fpn(81)
    body = model.body
    assert body.fc1 is None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in body.modules()) == 53
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("body.conv0", "body.stages.0.")) for n in frozen)
    assert all(p.requires_grad for n, p in body.stages[1].named_parameters())
    assert body.stages[1][0].conv1.stride == (2, 2) and body.stages[1][0].conv2.stride == (1, 1)


def test_roi_heads_under_bf16_autocast_and_without_rois():
    """Found on an H100 (the reference with --device cuda runs under bf16 autocast):
    grid_sample answers in float32 under autocast, and an image batch can have no RoIs."""
    torch.manual_seed(0)
    model = maskrcnn_mini(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model.features(torch.randn(2, 3, 64, 64))
        cls, box = model.box_head(feats, [torch.tensor([[4.0, 4.0, 30.0, 30.0]])] * 2)
        assert cls.shape == (2, 3) and box.shape == (2, 3, 4)
        cls, box = model.box_head(feats, [torch.zeros(0, 4)] * 2)
        assert cls.shape == (0, 3) and box.shape == (0, 3, 4)


def test_pasted_mask_fills_its_box():
    full = torch.ones(1, 28, 28)
    pasted = paste_masks(full, torch.tensor([[2.0, 3.0, 6.0, 9.0]]), 10, 10) >= 0.5
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[3:9, 2:6] = True
    assert torch.equal(pasted[0], expected)


def test_reference_config_logs_the_closed_rule_keys(tiny_coco):
    rules = yaml.safe_load(CLOSED_RULES.read_text())
    required = {item["KEY"]["NAME"] for item in rules if "KEY" in item} - {"eval_accuracy",
                                                                            "weights_initialization"}
    closed_tensors = set(re.findall(r'"((?:FPN|RPN|ROI)\w+)"', CLOSED_RULES.read_text()))
    w = make_workload("maskrcnn", "reference", {"data_path": str(tiny_coco), "batch_size": 2,
                                                "eval_batch_size": 2, "num_workers": 0})
    w.prepare_data(Path("unused"))
    w.setup(RunContext(seed=3))
    hp = w.hyperparameters()
    assert required <= set(hp), required - set(hp)
    assert (hp["opt_base_learning_rate"] / 0.02).is_integer() and hp["opt_learning_rate_decay_factor"] == 0.1
    assert (hp["num_image_candidates"] / 1000).is_integer() and len(hp["opt_learning_rate_decay_steps"]) == 2
    assert hp["min_image_size"] == 800 and hp["max_image_size"] == 1333
    assert sorted(w.initialized_tensors()) == sorted(closed_tensors)


def test_mini_run_log_passes_the_official_checker(data_root, tmp_path):
    w = make_workload("maskrcnn", "mini", {"train_images": 32, "val_images": 8, "batch_size": 8})
    outcome = run_once(w, RunContext(seed=2, data_dir=data_root), tmp_path / "result_0.txt",
                       max_epochs=1)
    assert outcome.epochs == 1 and set(outcome.quality) == {"BBOX", "SEGM"}
    ok, out = run_compliance_checker(tmp_path / "result_0.txt")
    assert ok, out[-3000:]


@pytest.mark.slow
def test_reference_pipeline_trains_and_evaluates_on_coco_layout(data_root, tmp_path):
    """ResNet-50-FPN Mask R-CNN with the reference resize/pad/flip pipeline, one step on two
    images (resized to 128 px here: the code path is the 800/1333 one)."""
    two = cached_dataset(data_root, "coco-scenes-ssd-test-2x2", coco.MINI_VERSION,
                         lambda d: coco.generate_scenes(d, 2, 2, size=64, max_objects=3))
    w = make_workload("maskrcnn", "reference", {"data_path": str(two), "batch_size": 2,
                                                "eval_batch_size": 2, "num_workers": 0,
                                                "min_image_size": 96, "max_image_size": 128})
    outcome = run_once(w, RunContext(seed=1), tmp_path / "ref.log", max_epochs=1)
    assert outcome.epochs == 1 and outcome.samples == 2
    assert all(0.0 <= v < 1.0 for v in outcome.quality.values())


@pytest.mark.slow
def test_mini_model_learns_on_tiny_data(data_root):
    """From untrained box and mask mAP of ~0 to a detector that finds and outlines objects."""
    w = make_workload("maskrcnn", "mini", {"train_images": 400, "val_images": 100, "warmup_steps": 20})
    w.prepare_data(data_root)
    w.setup(RunContext(seed=4))
    untrained = w.evaluate(0)
    for epoch in range(1, 4):
        for _ in w.train_epoch(epoch):
            pass
    trained = w.evaluate(3)
    print(untrained, trained)
    assert untrained["BBOX"] < 0.01 and untrained["SEGM"] < 0.01
    assert trained["BBOX"] > 0.01 and trained["SEGM"] > 0.01, trained
