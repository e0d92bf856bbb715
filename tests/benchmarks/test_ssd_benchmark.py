"""SSD: boxes and NMS by hand, learning on tiny data, the official checker, the closed keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

import mlperf_logging
from mlpace.benchmarks import coco, make_workload
from mlpace.benchmarks.detection import box_iou, cxcywh_to_xyxy, decode, encode, nms
from mlpace.benchmarks.ssd.model import (DepthwiseSeparable, MobileNetV1, match, ssd_loss, ssd_mobilenet_mini,
                                         ssd_mobilenet_v1, ssd_resnet34)
from mlpace.errors import MlpaceError
from mlpace.harness.datasets import cached_dataset
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

CLOSED_RULES = (Path(mlperf_logging.__file__).parent / "compliance_checker" / "training_1.1.0"
                / "closed_ssd.yaml")


@pytest.fixture(scope="module")
def tiny_coco(data_root) -> Path:
    """A tiny COCO-layout data set, used as `data_path` (the real-data code path)."""
    return cached_dataset(data_root, "coco-scenes-ssd-test-8x4", coco.MINI_VERSION,
                          lambda d: coco.generate_scenes(d, 8, 4, size=64, max_objects=3))


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 9.]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.6])
    # box 1 wins its group (IoU(0,1) = 90/110 > .5, IoU(1,3) = 81/109 > .5); box 2 is alone
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # at a threshold above every overlap nothing is suppressed, order is by score
    assert nms(boxes, scores, 0.95).tolist() == [1, 0, 2, 3]
    assert nms(boxes, scores, 0.95, max_keep=2).tolist() == [1, 0]


def test_box_encoding_round_trips_and_matching_covers_every_object():
    anchors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2]])
    gt = torch.tensor([[0.0, 0.0, 0.45, 0.55], [0.45, 0.45, 0.55, 0.55]])
    assert torch.allclose(decode(encode(gt[[0, 1, 1]], anchors), anchors), gt[[0, 1, 1]], atol=1e-6)
    loc, labels = match(gt, torch.tensor([4, 2]), anchors)
    # anchor 0 matches object 0 (IoU .82); the small object's best box is anchor 2 (IoU .25,
    # forced); anchor 1 overlaps nothing enough and is background
    assert labels.tolist() == [4, 0, 2]
    assert box_iou(gt, cxcywh_to_xyxy(anchors))[1, 2] == pytest.approx(0.25)
    # the loss is zero for perfect predictions and positive otherwise
    perfect_logits = torch.full((1, 3, 5), -20.0)
    perfect_logits[0, torch.arange(3), labels] = 20.0
    assert ssd_loss(loc[None], perfect_logits, loc[None], labels[None]) < 1e-6
    assert ssd_loss(torch.zeros(1, 3, 4), torch.zeros(1, 3, 5), loc[None], labels[None]) > 1.0


def test_reference_model_has_mlperf_default_boxes():
    model = ssd_resnet34(81)
    assert model.feature_sizes == [38, 19, 10, 5, 3, 1]
    assert len(model.anchors) == 8732


def depthwise_convs(model) -> list[torch.nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]


def test_mobilenet_backbone_is_depthwise_separable():
    model = ssd_mobilenet_mini(6, 64, width_multiplier=0.5)
    body = model.backbone
    assert isinstance(body, MobileNetV1) and len(body.blocks) == 7
    for block in body.blocks:
        assert isinstance(block, DepthwiseSeparable)
        dw, pw = block.depthwise, block.pointwise
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
        assert pw.groups == 1 and pw.kernel_size == (1, 1) and pw.in_channels == dw.out_channels
    assert len(depthwise_convs(model)) == 7          # every depthwise conv is a block's
    # Kaiming on a depthwise conv's true fan (9 taps), not torch's channels x 9
    assert body.blocks[-1].depthwise.weight.detach().std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.1)
    # 8x8 and 4x4 from blocks 5 and 7, then 2x2 and 1x1 from the extra blocks: the ResNet
    # SSD-mini's maps and its 340 default boxes
    x = torch.zeros(2, 3, 64, 64)
    assert [tuple(f.shape[1:]) for f in body(x)] == [(128, 8, 8), (256, 4, 4)]
    assert model.feature_sizes == [8, 4, 2, 1] and len(model.anchors) == 340
    locs, logits = model(x)
    assert locs.shape == (2, 340, 4) and logits.shape == (2, 340, 6)
    # the width multiplier scales every layer
    assert ssd_mobilenet_mini(6, 64, width_multiplier=0.25).backbone.feature_channels == [64, 128]


def test_reference_mobilenet_is_tf_ssd_mobilenet_v1():
    """MobileNet-v1 1.0 read at conv11 and conv13, as TF's ssd_mobilenet_v1 (MLPerf's)."""
    model = ssd_mobilenet_v1(91)
    body = model.backbone
    assert len(body.blocks) == 13 and body.feature_channels == [512, 1024]
    assert len(depthwise_convs(body)) == 13
    assert sum(p.numel() for p in body.parameters()) == 3_206_976   # MobileNet-v1 1.0 without its classifier
    assert model.feature_sizes == [19, 10, 5, 3, 2, 1]
    assert model.boxes_per_cell == [3, 6, 6, 6, 6, 6] and len(model.anchors) == 1917
    assert all(p.kernel_size == (1, 1) for p in model.predictors)


@pytest.mark.parametrize("backbone", ["resnet", "mobilenet"])
def test_backbone_is_a_config_choice(backbone, tiny_coco):
    w = make_workload("ssd", "mini", {"data_path": str(tiny_coco), "backbone": backbone, "batch_size": 4})
    w.prepare_data(Path("unused"))
    w.setup(RunContext(seed=1))
    assert bool(depthwise_convs(w.model)) == (backbone == "mobilenet")
    for _ in w.train_epoch(1):
        pass
    assert 0.0 <= w.evaluate(1) <= 1.0
    names = w.initialized_tensors()
    assert len(names) == len(set(names)) == len(list(w.model.parameters()))
    with pytest.raises(MlpaceError, match="unknown ssd model 'ssd_mini' or backbone 'vgg'"):
        make_workload("ssd", "mini", {"backbone": "vgg"})


def test_reference_config_logs_the_closed_rule_keys(tiny_coco):
    rules = yaml.safe_load(CLOSED_RULES.read_text())
    required = {item["KEY"]["NAME"] for item in rules if "KEY" in item} - {"eval_accuracy",
                                                                            "weights_initialization"}
    closed_tensors = set(re.findall(r'"(ssd0_\w+)"', CLOSED_RULES.read_text()))
    w = make_workload("ssd", "reference", {"data_path": str(tiny_coco), "batch_size": 2,
                                           "eval_batch_size": 2, "num_workers": 0})
    w.prepare_data(Path("unused"))
    w.setup(RunContext(seed=3))
    hp = w.hyperparameters()
    assert required <= set(hp), required - set(hp)
    assert hp["max_samples"] in (1, 50) and hp["opt_learning_rate_warmup_steps"] >= 1
    assert [b for b in hp["opt_learning_rate_decay_boundary_epochs"]] == [44, 55]
    names = w.initialized_tensors()
    assert len(names) == len(set(names)) and set(names) == closed_tensors
    assert len(names) == len(list(w.model.parameters()))   # one name per tensor


@pytest.mark.slow
def test_reference_pipeline_trains_and_evaluates_on_coco_layout(data_root, tmp_path):
    """SSD-ResNet34 at 300x300 with SSD's random crop, for one step on two images."""
    two = cached_dataset(data_root, "coco-scenes-ssd-test-2x2", coco.MINI_VERSION,
                         lambda d: coco.generate_scenes(d, 2, 2, size=64, max_objects=3))
    w = make_workload("ssd", "reference", {"data_path": str(two), "batch_size": 2,
                                           "eval_batch_size": 2, "num_workers": 0})
    outcome = run_once(w, RunContext(seed=1), tmp_path / "ref.log", max_epochs=1)
    assert outcome.epochs == 1 and outcome.samples == 2
    assert 0.0 <= outcome.quality < 1.0


def test_mini_run_log_passes_the_official_checker(data_root, tmp_path):
    w = make_workload("ssd", "mini", {"train_images": 64, "val_images": 16, "batch_size": 16})
    outcome = run_once(w, RunContext(seed=2, data_dir=data_root), tmp_path / "result_0.txt",
                       max_epochs=1)
    assert outcome.status == "aborted" and outcome.epochs == 1
    ok, out = run_compliance_checker(tmp_path / "result_0.txt")
    assert ok, out[-3000:]


@pytest.mark.slow
def test_mini_model_learns_on_tiny_data(data_root):
    """From an untrained mAP of ~0.001 to a detector in four epochs of 600 scenes."""
    w = make_workload("ssd", "mini", {"train_images": 600, "val_images": 100, "batch_size": 16,
                                      "base_lr": 0.05})
    w.prepare_data(data_root)
    w.setup(RunContext(seed=4))
    untrained = w.evaluate(0)
    for epoch in range(1, 5):
        for _ in w.train_epoch(epoch):
            pass
    trained = w.evaluate(4)
    assert untrained < 0.01
    assert trained > 0.03, trained          # measured: 0.058 (seed 4)
