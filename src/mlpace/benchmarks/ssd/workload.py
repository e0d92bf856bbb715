"""Object detection workload: configs for both scales and the train/eval functions.

Reference: MLPerf Training v1.0/v1.1 closed SSD-ResNet34 at 300x300 on COCO 2017 with SGD +
momentum, a linear warm-up from 0 and x0.1 steps at epochs 44 and 55, weight decay, target
0.23 mAP (pycocotools COCOeval, IoU .5:.95). Mini: the same recipe on SSD-mini and the
generated COCO-format scenes (`mlpace.benchmarks.coco`), held in memory.

`backbone` picks the SSD's backbone at either scale: `resnet` (the benchmark's) or `mobilenet`
(MobileNet-v1, the backbone of MLPerf Inference's ssd-mobilenet, which the inference
benchmark trains here; MLPerf has no training benchmark for it, so its recipe is this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from mlpace.benchmarks import coco
from mlpace.benchmarks.detection import CocoWorkload, flip_batch, normalize
from mlpace.benchmarks.ssd import data as ssd_data
from mlpace.benchmarks.ssd.model import (SSD, detect, match, mlperf_tensor_names, ssd_loss, ssd_mini,
                                         ssd_mobilenet_mini, ssd_mobilenet_v1, ssd_resnet34)
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides, bounded
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext
from mlpace.rules.benchmarks import get_spec

MODELS = ("ssd_mini", "ssd300")
BACKBONES = ("resnet", "mobilenet")


@dataclass(frozen=True)
class SsdConfig:
    model: str = "ssd_mini"              # ssd_mini (in memory, image_size) | ssd300 (the reference)
    backbone: str = "resnet"             # resnet (ResNet-34 at ssd300) | mobilenet (MobileNet-v1)
    data_path: str = ""                  # COCO 2017 root (reference); empty = generated mini data
    image_size: int = bounded(64, 1, 1024)
    widths: tuple[int, ...] = bounded((16, 32, 64), 1, 4096) # ssd_mini's ResNet stages
    width_multiplier: float = 1.0        # MobileNet-v1's width multiplier (alpha)
    batch_size: int = 32                 # global batch size
    eval_batch_size: int = 100
    base_lr: float = 0.05
    warmup_epochs: float = 1.0           # linear warm-up from warmup_factor * base_lr
    warmup_factor: float = 0.0
    decay_boundary_epochs: tuple[int, ...] = (44, 55)   # lr x decay_factor at each
    decay_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_samples: int = 1                 # random-crop trials per sampled IoU bound (reference)
    num_workers: int = 0                 # data-loader processes (reference scale)
    train_images: int = bounded(3000, 1)             # mini data set size
    val_images: int = bounded(500, 1)
    max_objects: int = 4                 # per generated scene
    threads: int = 0                     # torch CPU threads (0 = torch's default)


CONFIGS = {
    # mini: the decay boundaries sit after the epoch where runs usually converge (5-7), as
    # MLPerf's 44/55 sit after the reference's first evaluations at 40 and 50
    "mini": SsdConfig(decay_boundary_epochs=(9, 12), width_multiplier=0.25),
    # MLPerf v1.0 reference (mlcommons/training single_stage_detector): batch 32, lr 2.5e-3 per
    # 32 images, weight decay 5e-4, decay at 44/55 (the rules' allowed boundaries), 80 epochs.
    "reference": SsdConfig(model="ssd300", image_size=300, batch_size=32, eval_batch_size=32,
                           base_lr=2.5e-3, warmup_epochs=1.0, warmup_factor=0.0,
                           decay_boundary_epochs=(44, 55), weight_decay=5e-4, num_workers=8),
}


def build_model(config: SsdConfig, num_classes: int) -> SSD:
    """The SSD a config names (`model` x `backbone`), untrained."""
    if config.model == "ssd300":
        if config.backbone == "mobilenet":
            return ssd_mobilenet_v1(num_classes, config.width_multiplier)
        return ssd_resnet34(num_classes)
    if config.backbone == "mobilenet":
        return ssd_mobilenet_mini(num_classes, config.image_size, config.width_multiplier)
    return ssd_mini(num_classes, config.image_size, config.widths)


class SsdWorkload(CocoWorkload):
    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        num_classes = self.setup_coco(ctx, in_memory=cfg.model == "ssd_mini")
        self.model = build_model(cfg, num_classes)
        if self.in_memory:
            if self.train_x.shape[-1] != cfg.image_size or self.val_x.shape[-1] != cfg.image_size:
                raise MlpaceError(f"ssd_mini expects {cfg.image_size}px images")
            self.train_boxes = [torch.from_numpy(ssd_data.normalized_boxes(self.train_split, i))
                                for i in range(len(self.train_split))]
        else:
            train = ssd_data.CocoDetection(self.train_split, cfg.image_size, True, cfg.max_samples, ctx.seed)
            val = ssd_data.CocoDetection(self.val_split, cfg.image_size, False)
            self.train_loader = torch.utils.data.DataLoader(
                train, batch_size=cfg.batch_size // ctx.world_size, shuffle=True, drop_last=True,
                num_workers=cfg.num_workers, generator=self.generator, collate_fn=ssd_data.collate,
                pin_memory=ctx.is_cuda)
            self.val_loader = torch.utils.data.DataLoader(
                val, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers,
                collate_fn=ssd_data.collate)
        self.model = self.model.to(ctx.device, memory_format=torch.channels_last)
        self.anchors = self.model.anchors
        self.setup_optimizer()
        self.warmup_steps = max(1, int(cfg.warmup_epochs * self.steps_per_epoch))

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: constants.SGD,
            constants.OPT_BASE_LR: cfg.base_lr,
            constants.OPT_WEIGHT_DECAY: cfg.weight_decay,
            constants.OPT_LR_WARMUP_STEPS: self.warmup_steps,
            constants.OPT_LR_WARMUP_FACTOR: cfg.warmup_factor,
            constants.OPT_LR_DECAY_BOUNDARY_EPOCHS: list(cfg.decay_boundary_epochs),
            constants.MAX_SAMPLES: cfg.max_samples,
            constants.MODEL_BN_SPAN: cfg.batch_size // self.ctx.world_size,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(self.model)

    def learning_rate(self, step: int) -> float:
        """Linear warm-up from warmup_factor x base_lr, then x decay_factor at each boundary."""
        cfg = self.config
        if step < self.warmup_steps:
            start = cfg.warmup_factor * cfg.base_lr
            return start + (cfg.base_lr - start) * (step + 1) / self.warmup_steps
        epoch = step / self.steps_per_epoch
        return cfg.base_lr * cfg.decay_factor ** sum(epoch >= b for b in cfg.decay_boundary_epochs)

    def _train_step(self, x: torch.Tensor, boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> None:
        targets = [match(b, l, self.anchors.cpu()) for b, l in zip(boxes, labels)]
        dev = self.ctx.device
        loc_t = torch.stack([t[0] for t in targets]).to(dev)
        label_t = torch.stack([t[1] for t in targets]).to(dev)
        with self.ctx.autocast():
            locs, logits = self.model(x.to(dev).contiguous(memory_format=torch.channels_last))
        self.optimizer_step(ssd_loss(locs.float(), logits.float(), loc_t, label_t))

    def train_epoch(self, epoch: int) -> Iterator[int]:
        self.model.train()
        if self.in_memory:
            for idx, flip in self.in_memory_batches():
                x, boxes = flip_batch(normalize(self.train_x[idx]), [self.train_boxes[j] for j in idx], flip)
                self._train_step(x, boxes, [self.train_labels[j] for j in idx])
                yield len(idx)
        else:
            for x, boxes, labels in self.train_loader:
                self._train_step(x, boxes, labels)
                yield len(x) * self.ctx.world_size

    @torch.no_grad()
    def detections(self) -> list[dict]:
        """The model's detections on the validation split, in COCO results format."""
        self.model.eval()
        split, bs = self.val_split, self.config.eval_batch_size
        if self.in_memory:
            batches = (normalize(self.val_x[i:i + bs]) for i in range(0, len(split), bs))
        else:
            batches = (x for x, _, _ in self.val_loader)
        results, index = [], 0
        for x in batches:
            with self.ctx.autocast():
                locs, logits = self.model(x.to(self.ctx.device).contiguous(memory_format=torch.channels_last))
            for boxes, scores, labels in detect(locs.cpu(), logits.cpu(), self.anchors.cpu()):
                info = split.coco.imgs[split.image_ids[index]]
                scale = torch.tensor([info["width"], info["height"]] * 2)
                xyxy = boxes * scale
                for b, s, l in zip(xyxy.tolist(), scores.tolist(), labels.tolist()):
                    results.append(coco.detection_result(split, index, b, s, l))
                index += 1
        return results

    def evaluate(self, epoch: int) -> float:
        return coco.coco_map(self.val_split, self.detections(), "bbox")


def make(scale: str, overrides: dict) -> SsdWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    if config.model not in MODELS or config.backbone not in BACKBONES:
        raise MlpaceError(f"unknown ssd model {config.model!r} or backbone {config.backbone!r}; "
                          f"use model {' or '.join(MODELS)}, backbone {' or '.join(BACKBONES)}")
    return SsdWorkload(get_spec("ssd"), scale, config)
