"""Mask R-CNN's input pipeline over the COCO layout (`mlpace.benchmarks.coco` reads the files
and generates the mini scenes, whose annotations carry the instance masks as COCO RLE).

Reference scale: decode each image, resize so the shorter side is 800 (longer at most 1333),
flip half the training images, pad a batch to a multiple of 32 (`CocoInstances`,
`collate_padded`). Mini scale: the whole split is decoded into memory once (by the shared
`CocoWorkload` set-up), with its instance masks (`instance_masks`), and only flipped
(`flip_instances`). Boxes are x1y1x2y2 in pixels of the network input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mlpace.benchmarks import coco
from mlpace.benchmarks.detection import flip_batch, normalize
from mlpace.benchmarks.images import read_image


def instance_masks(split: coco.CocoSplit, index: int) -> np.ndarray:
    """Instance masks of one image, N x H x W uint8 (same order as the split's boxes/labels)."""
    annotations = coco._usable_annotations(split.coco, split.image_ids[index])
    info = split.coco.imgs[split.image_ids[index]]
    if not annotations:
        return np.zeros((0, info["height"], info["width"]), np.uint8)
    return np.stack([split.coco.annToMask(a) for a in annotations])


def flip_instances(images: torch.Tensor, boxes: list, masks: list, flip: torch.Tensor):
    """`flip_batch` with boxes in pixels, and the instance masks too."""
    images, boxes = flip_batch(images, boxes, flip, images.shape[-1])
    masks = [m.flip(-1) if f else m for m, f in zip(masks, flip.tolist())]
    return images, boxes, masks


class CocoInstances(torch.utils.data.Dataset):
    """Reference input: (image 3xHxW, boxes Nx4 px, labels N, masks NxHxW, scale) per image,
    resized so the shorter side is min_size (longer at most max_size), flipped in training."""

    def __init__(self, split: coco.CocoSplit, min_size: int, max_size: int, train: bool, seed: int = 0):
        self.split, self.min_size, self.max_size, self.train = split, min_size, max_size, train
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.asarray(read_image(self.split.files[i])).copy()).permute(2, 0, 1)
        h, w = img.shape[-2:]
        scale = min(self.min_size / min(h, w), self.max_size / max(h, w))
        size = (round(h * scale), round(w * scale))
        x = normalize(F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False))
        boxes = torch.from_numpy(self.split.boxes[i]) * scale
        masks = torch.from_numpy(instance_masks(self.split, i))
        masks = F.interpolate(masks[None].float(), size=size, mode="nearest")[0].to(torch.uint8)
        if self.train and self.rng.random() < 0.5:
            x, [boxes], [masks] = flip_instances(x, [boxes], [masks], torch.tensor([True]))
        return x[0], boxes, torch.from_numpy(self.split.labels[i]), masks, scale


def collate_padded(batch):
    """Zero-pad a batch's images (and masks) to one size, a multiple of 32."""
    images, boxes, labels, masks, scales = zip(*batch)
    h = -(-max(x.shape[1] for x in images) // 32) * 32
    w = -(-max(x.shape[2] for x in images) // 32) * 32
    out = images[0].new_zeros(len(images), 3, h, w)
    for i, x in enumerate(images):
        out[i, :, :x.shape[1], :x.shape[2]] = x
    masks = [F.pad(m, (0, w - m.shape[2], 0, h - m.shape[1])) for m in masks]
    return out, list(boxes), list(labels), masks, list(scales)
