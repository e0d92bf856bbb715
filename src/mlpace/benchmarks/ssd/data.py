"""SSD's input pipeline over the COCO layout (`mlpace.benchmarks.coco` reads the files).

Reference scale: decode each image, SSD's random crop (`max_samples` = 1 trial per sampled
IoU bound, as the MLPerf v1.0 rules fix it), horizontal flip, resize to 300x300, normalise.
Mini scale: the whole split is decoded into memory once and only flipped
(`mlpace.benchmarks.detection.flip_batch`).
Boxes leave here as x1y1x2y2 in [0, 1] units of the network input.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mlpace.benchmarks.coco import CocoSplit
from mlpace.benchmarks.detection import normalize
from mlpace.benchmarks.images import read_image

CROP_MIN_IOU = (None, 0.1, 0.3, 0.5, 0.7, 0.9, -1.0)   # None: keep the whole image


def normalized_boxes(split: CocoSplit, index: int) -> np.ndarray:
    info = split.coco.imgs[split.image_ids[index]]
    return split.boxes[index] / np.array([info["width"], info["height"]] * 2, np.float32)


def ssd_random_crop(rng: np.random.Generator, boxes: np.ndarray, max_samples: int = 1):
    """(x0, y0, x1, y1) crop in [0, 1] units and the boxes kept (centres inside), or None."""
    while True:
        min_iou = CROP_MIN_IOU[rng.integers(len(CROP_MIN_IOU))]
        if min_iou is None or len(boxes) == 0:
            return None
        for _ in range(max_samples):
            w, h = rng.uniform(0.3, 1.0, 2)
            if not 0.5 <= w / h <= 2:
                continue
            x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            crop = np.array([x0, y0, x0 + w, y0 + h], np.float32)
            lt = np.maximum(boxes[:, :2], crop[:2])
            rb = np.minimum(boxes[:, 2:], crop[2:])
            inter = np.clip(rb - lt, 0, None).prod(1)
            area = (boxes[:, 2:] - boxes[:, :2]).prod(1)
            iou = inter / (area + w * h - inter)
            if iou.min() < min_iou:
                continue
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            keep = ((centres > crop[:2]) & (centres < crop[2:])).all(1)
            if keep.any():
                return crop, keep


class CocoDetection(torch.utils.data.Dataset):
    """Map-style data set of (image 3xSxS float, boxes Nx4, labels N) for the reference scale."""

    def __init__(self, split: CocoSplit, size: int, train: bool, max_samples: int = 1, seed: int = 0):
        self.split, self.size, self.train, self.max_samples = split, size, train, max_samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        img = read_image(self.split.files[i])
        boxes, labels = normalized_boxes(self.split, i), self.split.labels[i]
        if self.train:
            cropped = ssd_random_crop(self.rng, boxes, self.max_samples)
            if cropped is not None:
                (x0, y0, x1, y1), keep = cropped
                w, h = img.size
                img = img.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))
                boxes = (np.clip(boxes[keep], [x0, y0, x0, y0], [x1, y1, x1, y1])
                         - [x0, y0, x0, y0]) / [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
                labels = labels[keep]
            if self.rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
                boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
        img = img.resize((self.size, self.size), Image.BILINEAR)
        x = normalize(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None])[0]
        return x, torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.as_tensor(labels)


def collate(batch):
    images, boxes, labels = zip(*batch)
    return torch.stack(images), list(boxes), list(labels)
