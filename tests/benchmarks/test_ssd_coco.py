"""The shared COCO layer (mlpace.benchmarks.coco): generator, loader and pycocotools mAP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlpace.benchmarks import coco
from mlpace.benchmarks.maskrcnn.data import instance_masks
from mlpace.errors import MlpaceError
from mlpace.harness.datasets import cached_dataset


@pytest.fixture(scope="module")
def scenes(data_root) -> Path:
    return cached_dataset(data_root, "coco-scenes-test-24x8", coco.MINI_VERSION,
                          lambda d: coco.generate_scenes(d, 24, 8, size=64, max_objects=4))


def test_generated_scenes_are_in_coco_layout_and_read_back(scenes):
    assert (scenes / "train2017" / "000000000001.jpg").is_file()
    raw = json.loads((scenes / "annotations" / "instances_val2017.json").read_text())
    assert {"images", "annotations", "categories"} <= set(raw)
    assert [c["id"] for c in raw["categories"]] == coco.MINI_CATEGORY_IDS

    train = coco.load_split(scenes, "train")
    assert len(train) == 24 and train.class_names == coco.MINI_CLASSES
    assert sum(len(b) for b in train.boxes) > 24           # several objects per scene
    for boxes, labels in zip(train.boxes, train.labels):
        assert ((labels >= 1) & (labels <= len(coco.MINI_CLASSES))).all()   # ids 1,3,5.. -> 1..5
        assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 64
    # each box is the tight box of the object's visible mask (COCO's convention)
    masks = instance_masks(train, 0)
    assert masks.shape == (len(train.boxes[0]), 64, 64)
    for box, mask in zip(train.boxes[0], masks):
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(int(v) for v in box)
    images = coco.load_images(train)
    assert tuple(images.shape) == (24, 3, 64, 64)


def test_generator_is_deterministic(tmp_path):
    coco.generate_scenes(tmp_path / "a", 3, 2)
    coco.generate_scenes(tmp_path / "b", 3, 2)
    for name in ("instances_train2017.json", "instances_val2017.json"):
        assert (tmp_path / "a" / "annotations" / name).read_text() == \
               (tmp_path / "b" / "annotations" / name).read_text()


def test_missing_or_broken_data_is_one_clear_error(tmp_path):
    with pytest.raises(MlpaceError, match="annotations not found"):
        coco.load_split(tmp_path, "train")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("[1, 2]")
    with pytest.raises(MlpaceError, match="not a COCO instances file"):
        coco.load_split(tmp_path, "train")


def _tiny_ground_truth(root: Path) -> coco.CocoSplit:
    """One 100x100 image with one 10x10 object of category 3."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    data = {"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [20, 20, 10, 10],
                             "area": 100.0, "iscrowd": 0}],
            "categories": [{"id": 3, "name": "thing"}]}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return coco.load_split(root, "val")


def test_map_matches_hand_computed_values(tmp_path):
    gt = _tiny_ground_truth(tmp_path)
    hit = {"image_id": 7, "category_id": 3, "bbox": [20, 20, 10, 10], "score": 0.9}
    assert coco.coco_map(gt, [hit]) == pytest.approx(1.0)
    # IoU 0.72: a true positive at IoU thresholds .50 .55 .60 .65 .70, a miss at the other 5
    loose = dict(hit, bbox=[20, 20, 10, 7.2])
    assert coco.coco_map(gt, [loose]) == pytest.approx(0.5)
    # a higher-scored false positive first: precision 1/2 at recall 1, so AP = 0.5
    false_positive = dict(hit, bbox=[60, 60, 10, 10], score=0.95)
    assert coco.coco_map(gt, [hit, false_positive]) == pytest.approx(0.5)
    assert coco.coco_map(gt, []) == 0.0
    assert coco.coco_map(gt, [dict(hit, bbox=[70, 70, 5, 5])]) == 0.0   # a miss
