"""What the two COCO detectors (ssd, maskrcnn) share: box arithmetic, NMS, input
normalisation and flips, and the untimed set-up of a run on COCO-format data.

Boxes are x1y1x2y2 unless a name says cxcywh (centre, width, height); any one unit (pixels or
[0, 1] of the image) as long as boxes and anchors agree. The box coder is SSD's with variances
(0.1, 0.2), which are Faster R-CNN's weights (10, 10, 5, 5) inverted; Mask R-CNN's RPN uses
variances (1, 1). Non-maximum suppression is plain torch (greedy, per class).

`CocoWorkload` is the base of both workloads: it finds the data (`prepare_data`) and sets up
threads, seeds, the two splits and, at mini scale, their images in memory (`setup_coco`), and
the SGD optimizer with its step counters (`setup_optimizer`); then one SGD step
(`optimizer_step`) and the mini scale's shuffled batches (`in_memory_batches`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from mlpace.benchmarks import coco
from mlpace.harness.workload import RunContext, Workload, weight_decay_groups

VARIANCES = (0.1, 0.2)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


# ----------------------------------------------------------------------------- images
def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of 0-255 images (N x 3 x H x W), as both references do."""
    return (images_uint8.float() - MEAN) / STD


def flip_batch(images: torch.Tensor, boxes: list[torch.Tensor], flip: torch.Tensor,
               width: float = 1.0):
    """Mirror the images (and their boxes, in units where the image is `width` wide) where
    `flip` is true."""
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    boxes = [torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1) if f else b
             for b, f in zip(boxes, flip.tolist())]
    return images, boxes


# ----------------------------------------------------------------------------- boxes
def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (N x 4, x1y1x2y2) with every box in `b` (M x 4): N x M."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    # x and y apart: two N x M planes instead of one N x M x 2 (1.7x faster at 400 x 400, same bits)
    w = (torch.min(a[:, None, 2], b[None, :, 2]) - torch.max(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.min(a[:, None, 3], b[None, :, 3]) - torch.max(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode(boxes_xyxy: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Offsets of boxes (x1y1x2y2) from anchors (cx, cy, w, h), in any one unit. Variances
    (0.1, 0.2) are SSD's; Faster R-CNN's weights (10, 10, 5, 5) are the same thing inverted."""
    wh = (boxes_xyxy[..., 2:] - boxes_xyxy[..., :2]).clamp(min=1e-6)
    cxcy = (boxes_xyxy[..., :2] + boxes_xyxy[..., 2:]) / 2
    return torch.cat([(cxcy - anchors[..., :2]) / (variances[0] * anchors[..., 2:]),
                      torch.log(wh / anchors[..., 2:]) / variances[1]], -1)


def decode(offsets: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Inverse of `encode`: x1y1x2y2 in the anchors' unit (scales capped at 1000/16, as
    Faster R-CNN's coder caps them)."""
    cxcy = anchors[..., :2] + offsets[..., :2] * variances[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp((offsets[..., 2:] * variances[1]).clamp(max=math.log(1000 / 16)))
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        max_keep: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes (at most `max_keep`), best
    score first. The overlaps are computed at once in torch; the greedy walk runs over a numpy
    boolean matrix, where one step costs a microsecond instead of a torch call's tens."""
    order = scores.argsort(descending=True)
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        suppressed |= overlaps[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms(boxes, scores, classes, iou_threshold: float, max_keep: int | None = None) -> torch.Tensor:
    """Per-class NMS in one call: shifting each class's boxes apart keeps them from meeting."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    shift = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + shift, scores, iou_threshold, max_keep)


# ----------------------------------------------------------------------------- workload
class CocoWorkload(Workload):
    """Base of the ssd and maskrcnn workloads. Their configs have `data_path`, `threads`,
    `batch_size`, `base_lr`, `momentum`, `weight_decay` and the mini data keys (`image_size`,
    `max_objects`, `train_images`, `val_images`) of the generated scenes."""

    def prepare_data(self, data_dir: Path) -> None:
        c = self.config
        self.root = self.locate_data(
            data_dir, "COCO 2017 data set",
            (f"coco-scenes-{c.image_size}px-{c.max_objects}obj-{c.train_images}x{c.val_images}", coco.MINI_VERSION,
             lambda d: coco.generate_scenes(d, c.train_images, c.val_images, c.image_size, c.max_objects)),
            f"the reference {self.spec.name} needs COCO 2017: pass --set data_path=/path/to/coco "
            "(with train2017/, val2017/ and annotations/)")

    def setup_coco(self, ctx: RunContext, in_memory: bool) -> int:
        """Threads, seeds, both splits and, `in_memory`, their images (uint8 N x 3 x H x W in
        `train_x`, `val_x`) and training labels; returns the number of classes with background."""
        self.begin_setup(ctx)
        self.in_memory = in_memory
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.train_split = coco.load_split(self.root, "train")
        self.val_split = coco.load_split(self.root, "val")
        if in_memory:
            self.train_x = coco.load_images(self.train_split)
            self.val_x = coco.load_images(self.val_split)
            self.train_labels = [torch.from_numpy(l) for l in self.train_split.labels]
        return len(self.train_split.category_ids) + 1

    def setup_optimizer(self) -> None:
        """SGD with momentum over `self.model` (no weight decay on norms and biases)."""
        cfg = self.config
        self.optimizer = torch.optim.SGD(weight_decay_groups(self.model, cfg.weight_decay),
                                         lr=cfg.base_lr, momentum=cfg.momentum)
        self.steps_per_epoch = max(1, len(self.train_split) // cfg.batch_size)
        self.step = 0

    def learning_rate(self, step: int) -> float:
        """The schedule (each benchmark its own)."""
        raise NotImplementedError

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """One SGD step at the schedule's `learning_rate(step)`."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.last_loss = float(loss.detach())

    def in_memory_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini scale, one epoch: each step's image indices (a seeded shuffle) and flip flags."""
        n, bs = len(self.train_split), self.config.batch_size
        order = torch.randperm(n, generator=self.generator)
        for i in range(self.steps_per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            yield idx, torch.rand(len(idx), generator=self.generator) < 0.5

    def train_samples(self) -> int:
        return len(self.train_split)

    def eval_samples(self) -> int:
        return len(self.val_split)
