"""Instance segmentation workload: configs for both scales, the training targets and losses,
inference to COCO results, and box + mask mAP.

Reference: MLPerf Training v1.0/v1.1 closed Mask R-CNN ResNet-50-FPN on COCO 2017 (shorter side
800, longer at most 1333), SGD + momentum, linear warm-up, x0.1 at two step boundaries, target
0.377 box and 0.339 mask mAP. Mini: the same pipeline on Mask R-CNN-mini and the generated
COCO-format scenes with instance masks (`mlpace.benchmarks.coco`), held in memory
(the input pipeline: `mlpace.benchmarks.maskrcnn.data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mlpace.benchmarks import coco
from mlpace.benchmarks.detection import (CocoWorkload, batched_nms, box_iou, cxcywh_to_xyxy, decode,
                                         encode, normalize, xyxy_to_cxcywh)
from mlpace.benchmarks.maskrcnn.data import CocoInstances, collate_padded, flip_instances, instance_masks
from mlpace.benchmarks.maskrcnn.model import (ROI_VARIANCES, RPN_VARIANCES, maskrcnn_mini,
                                              maskrcnn_resnet50_fpn, mlperf_tensor_names, roi_align)
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class MaskRcnnConfig:
    model: str = "maskrcnn_mini"          # maskrcnn_mini | maskrcnn_resnet50_fpn
    data_path: str = ""                   # COCO 2017 root (reference); empty = generated mini data
    image_size: int = 64                  # mini scenes
    min_image_size: int = 800             # reference resize: shorter side ...
    max_image_size: int = 1333            # ... and the cap on the longer side
    widths: tuple[int, ...] = (8, 16, 32)     # maskrcnn_mini backbone
    channels: int = 32                    # maskrcnn_mini FPN / head width
    batch_size: int = 16                  # global batch size
    eval_batch_size: int = 100
    base_lr: float = 0.04
    warmup_steps: int = 100
    warmup_factor: float = 0.1            # the warm-up starts at warmup_factor * base_lr
    decay_steps: tuple[int, ...] = (1500, 2000)
    decay_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    rpn_pre_nms: int = 200                # per level, training and evaluation
    rpn_post_nms_train: int = 64          # proposals per image
    rpn_post_nms_test: int = 50
    rpn_batch: int = 64                   # sampled anchors per image (half positive at most)
    roi_batch: int = 32                   # sampled RoIs per image (a quarter positive at most)
    max_detections: int = 20              # per image (COCO counts up to 100; scenes hold <= 4)
    num_workers: int = 0
    train_images: int = 3000              # mini data set size
    val_images: int = 500
    max_objects: int = 4
    threads: int = 0


CONFIGS = {
    "mini": MaskRcnnConfig(),
    # MLPerf reference (maskrcnn-benchmark e2e_mask_rcnn_R_50_FPN_1x as the v1.0 rules fix it).
    "reference": MaskRcnnConfig(model="maskrcnn_resnet50_fpn", batch_size=16, eval_batch_size=8,
                                base_lr=0.02, warmup_steps=500, warmup_factor=1 / 3,
                                decay_steps=(60000, 80000), weight_decay=1e-4, rpn_pre_nms=2000,
                                rpn_post_nms_train=1000, rpn_post_nms_test=1000, rpn_batch=256,
                                roi_batch=512, max_detections=100, num_workers=8),
}


def sample(positive: torch.Tensor, negative: torch.Tensor, total: int, fraction: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random indices of at most `fraction * total` positives and negatives to fill `total`."""
    pos, neg = positive.nonzero().flatten(), negative.nonzero().flatten()
    n_pos = min(len(pos), int(total * fraction))
    n_neg = min(len(neg), total - n_pos)
    pos = pos[torch.randperm(len(pos), generator=generator)[:n_pos].to(pos.device)]
    neg = neg[torch.randperm(len(neg), generator=generator)[:n_neg].to(neg.device)]
    return pos, neg


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Place N 28x28 mask probabilities at their boxes in an image: N x height x width."""
    xs = torch.arange(width, dtype=masks.dtype) + 0.5
    ys = torch.arange(height, dtype=masks.dtype) + 0.5
    out = []
    for m, b in zip(masks.split(20), boxes.split(20)):   # chunks bound the grid's memory
        gx = (xs[None] - b[:, 0:1]) / (b[:, 2:3] - b[:, 0:1]).clamp(min=1e-3) * 2 - 1
        gy = (ys[None] - b[:, 1:2]) / (b[:, 3:4] - b[:, 1:2]).clamp(min=1e-3) * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)
        out.append(F.grid_sample(m[:, None], grid, align_corners=False)[:, 0])
    return torch.cat(out) if out else masks.new_zeros(0, height, width)


class MaskRcnnWorkload(CocoWorkload):
    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        num_classes = self.setup_coco(ctx, in_memory=cfg.model == "maskrcnn_mini")
        if self.in_memory:
            self.model = maskrcnn_mini(num_classes, cfg.widths, cfg.channels)
            self.train_boxes = [torch.from_numpy(b) for b in self.train_split.boxes]
            self.train_masks = [torch.from_numpy(instance_masks(self.train_split, i))
                                for i in range(len(self.train_split))]
        elif cfg.model == "maskrcnn_resnet50_fpn":
            self.model = maskrcnn_resnet50_fpn(num_classes)
            train = CocoInstances(self.train_split, cfg.min_image_size, cfg.max_image_size, True, ctx.seed)
            val = CocoInstances(self.val_split, cfg.min_image_size, cfg.max_image_size, False)
            self.train_loader = torch.utils.data.DataLoader(
                train, batch_size=cfg.batch_size // ctx.world_size, shuffle=True, drop_last=True,
                num_workers=cfg.num_workers, generator=self.generator, collate_fn=collate_padded)
            self.val_loader = torch.utils.data.DataLoader(
                val, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, collate_fn=collate_padded)
        else:
            raise MlpaceError(f"unknown maskrcnn model {cfg.model!r}; use maskrcnn_mini or maskrcnn_resnet50_fpn")
        # channels-last: oneDNN's convolutions run faster on it (a training step 0.89x, the
        # evaluation's detections 0.9x CPU time on the mini; NHWC is the GPUs' layout too)
        self.model = self.model.to(ctx.device, memory_format=torch.channels_last)
        self.setup_optimizer()

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of images on the model's device, in its memory format (channels-last)."""
        return images.to(self.ctx.device).contiguous(memory_format=torch.channels_last)

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: "sgd_with_momentum",
            constants.OPT_BASE_LR: cfg.base_lr,
            constants.OPT_WEIGHT_DECAY: cfg.weight_decay,
            constants.OPT_LR_WARMUP_STEPS: cfg.warmup_steps,
            constants.OPT_LR_WARMUP_FACTOR: cfg.warmup_factor,
            constants.OPT_LR_DECAY_FACTOR: cfg.decay_factor,
            constants.OPT_LR_DECAY_STEPS: list(cfg.decay_steps),
            # post-NMS RPN candidates per device batch, as MLPerf logs them
            constants.NUM_IMAGE_CANDIDATES: cfg.rpn_post_nms_train * (cfg.batch_size // self.ctx.world_size),
            constants.MIN_IMAGE_SIZE: cfg.image_size if self.in_memory else cfg.min_image_size,
            constants.MAX_IMAGE_SIZE: cfg.image_size if self.in_memory else cfg.max_image_size,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(self.model)

    def learning_rate(self, step: int) -> float:
        cfg = self.config
        lr = cfg.base_lr * cfg.decay_factor ** sum(step >= s for s in cfg.decay_steps)
        if step < cfg.warmup_steps:
            alpha = step / cfg.warmup_steps
            lr *= cfg.warmup_factor * (1 - alpha) + alpha
        return lr

    # --- training ---------------------------------------------------------------------------
    def _rpn_loss(self, logits, deltas, anchors, gt_boxes) -> torch.Tensor:
        cfg = self.config
        logits, deltas, anchors = torch.cat(logits, 1), torch.cat(deltas, 1), torch.cat(anchors)
        anchors_xyxy = cxcywh_to_xyxy(anchors)
        cls_loss, box_loss, count = 0.0, 0.0, 0
        for i, gt in enumerate(gt_boxes):
            if len(gt):
                iou = box_iou(gt, anchors_xyxy)
                best, idx = iou.max(0)
                positive = best >= 0.7
                best_per_gt = iou.max(1, keepdim=True).values
                positive |= ((iou == best_per_gt) & (best_per_gt > 0)).any(0)   # each object's best
                negative = (best < 0.3) & ~positive
            else:
                idx = torch.zeros(len(anchors), dtype=torch.int64, device=anchors.device)
                positive = torch.zeros(len(anchors), dtype=torch.bool, device=anchors.device)
                negative = ~positive
            pos, neg = sample(positive, negative, cfg.rpn_batch, 0.5, self.generator)
            chosen = torch.cat([pos, neg])
            target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(logits.device)
            cls_loss = cls_loss + F.binary_cross_entropy_with_logits(logits[i, chosen], target, reduction="sum")
            if len(pos):
                t = encode(gt[idx[pos]], anchors[pos], RPN_VARIANCES)
                box_loss = box_loss + F.smooth_l1_loss(deltas[i, pos], t, beta=1 / 9, reduction="sum")
            count += len(chosen)
        return (cls_loss + box_loss) / max(count, 1)

    def _roi_losses(self, feats, proposals, gt_boxes, gt_labels, gt_masks) -> torch.Tensor:
        cfg = self.config
        rois, labels, targets, fg_rois, fg_gt = [], [], [], [], []
        for props, gt, lab in zip(proposals, gt_boxes, gt_labels):
            cand = torch.cat([props, gt])
            if len(gt):
                best, idx = box_iou(gt, cand).max(0)
            else:
                best = torch.zeros(len(cand), device=cand.device)
                idx = torch.zeros(len(cand), dtype=torch.int64, device=cand.device)
            pos, neg = sample(best >= 0.5, best < 0.5, cfg.roi_batch, 0.25, self.generator)
            rois.append(cand[torch.cat([pos, neg])])
            labels.append(torch.cat([lab[idx[pos]], torch.zeros(len(neg), dtype=torch.int64, device=lab.device)]))
            targets.append(encode(gt[idx[pos]], xyxy_to_cxcywh(cand[pos]), ROI_VARIANCES))
            fg_rois.append(cand[pos])
            fg_gt.append(idx[pos])
        cls_logits, box_deltas = self.model.box_head(feats, rois)
        labels = torch.cat(labels)
        n_fg = sum(len(f) for f in fg_rois)
        starts = np.cumsum([0] + [len(r) for r in rois[:-1]])   # foreground rows lead each image's
        fg_rows = torch.cat([torch.arange(len(f)) + int(s) for f, s in zip(fg_rois, starts)])
        loss = F.cross_entropy(cls_logits, labels)
        if n_fg:
            fg_labels = labels[fg_rows]
            loss = loss + F.smooth_l1_loss(box_deltas[fg_rows, fg_labels], torch.cat(targets), beta=1.0,
                                           reduction="sum") / len(labels)
            mask_logits = self.model.mask_head(feats, fg_rois)
            mask_logits = mask_logits[torch.arange(n_fg), fg_labels]
            mask_targets = torch.cat([
                roi_align(m.float(), 1.0, r, mask_logits.shape[-1])[torch.arange(len(r)), g]
                for m, r, g in zip(gt_masks, fg_rois, fg_gt) if len(r)])
            loss = loss + F.binary_cross_entropy_with_logits(mask_logits, (mask_targets >= 0.5).float())
        return loss

    def _train_step(self, x, boxes, labels, masks) -> None:
        cfg, model, dev = self.config, self.model, self.ctx.device
        # The targets go where the model is (CUDA): anchors, proposals and IoUs are made there.
        boxes, labels, masks = ([t.to(dev) for t in ts] for ts in (boxes, labels, masks))
        with self.ctx.autocast():
            feats = model.features(self.as_input(x))
            logits, deltas = model.rpn(feats)
            anchors = model.anchors(feats)
            proposals = model.proposals(logits, deltas, anchors, x.shape[-2:], cfg.rpn_pre_nms,
                                        cfg.rpn_post_nms_train)
            loss = self._rpn_loss(logits, deltas, anchors, boxes) + \
                self._roi_losses(feats, proposals, boxes, labels, masks)
        self.optimizer_step(loss)

    def train_epoch(self, epoch: int) -> Iterator[int]:
        self.model.train()
        if self.in_memory:
            for idx, flip in self.in_memory_batches():
                idx = idx.tolist()
                x, boxes, masks = flip_instances(normalize(self.train_x[idx]), [self.train_boxes[j] for j in idx],
                                                 [self.train_masks[j] for j in idx], flip)
                self._train_step(x, boxes, [self.train_labels[j] for j in idx], masks)
                yield len(idx)
        else:
            for x, boxes, labels, masks, _ in self.train_loader:
                self._train_step(x, boxes, labels, masks)
                yield len(x) * self.ctx.world_size

    # --- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def _detect(self, x: torch.Tensor):
        """Per image: boxes (px), scores, labels 1..K and 28x28 mask probabilities."""
        cfg, model = self.config, self.model
        feats = model.features(x)
        logits, deltas = model.rpn(feats)
        proposals = model.proposals(logits, deltas, model.anchors(feats), x.shape[-2:],
                                    cfg.rpn_pre_nms, cfg.rpn_post_nms_test)
        cls_logits, box_deltas = model.box_head(feats, proposals)
        h, w = x.shape[-2:]
        results, start = [], 0
        for props in proposals:
            scores = cls_logits[start:start + len(props)].float().softmax(-1)[:, 1:]
            d = box_deltas[start:start + len(props), 1:].float()
            start += len(props)
            boxes = decode(d, xyxy_to_cxcywh(props)[:, None], ROI_VARIANCES)
            boxes = torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                                 boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], -1)
            keep = scores > 0.05
            cls = keep.nonzero()[:, 1]
            b, s = boxes[keep], scores[keep]
            kept = batched_nms(b, s, cls, 0.5, cfg.max_detections)
            results.append([b[kept], s[kept], cls[kept] + 1])
        mask_logits = model.mask_head(feats, [r[0] for r in results])
        start = 0
        for r in results:
            n = len(r[0])
            r.append(mask_logits[start:start + n][torch.arange(n), r[2]].float().sigmoid())
            start += n
        return results

    def detections(self) -> list[dict]:
        """Box and mask detections on the validation split, in COCO results format."""
        from pycocotools import mask as mask_utils
        self.model.eval()
        split, bs = self.val_split, self.config.eval_batch_size
        if self.in_memory:
            batches = ((normalize(self.val_x[i:i + bs]), [1.0] * len(self.val_x[i:i + bs]))
                       for i in range(0, len(split), bs))
        else:
            batches = ((x, scales) for x, _, _, _, scales in self.val_loader)
        out, index = [], 0
        for x, scales in batches:
            with self.ctx.autocast():
                results = self._detect(self.as_input(x))
            for (boxes, scores, labels, masks), scale in zip(results, scales):
                i, index = index, index + 1
                if len(boxes) == 0:
                    continue
                info = split.coco.imgs[split.image_ids[i]]
                boxes = boxes.cpu() / scale
                pasted = paste_masks(masks.cpu(), boxes, info["height"], info["width"]) >= 0.5
                rles = mask_utils.encode(np.asfortranarray(pasted.permute(1, 2, 0).numpy().astype(np.uint8)))
                for b, s, l, rle in zip(boxes.tolist(), scores.tolist(), labels.tolist(), rles):
                    rle["counts"] = rle["counts"].decode("ascii")
                    out.append(coco.detection_result(split, i, b, s, l, segmentation=rle))
        return out

    def evaluate(self, epoch: int) -> dict[str, float]:
        dets = self.detections()
        return {"BBOX": coco.coco_map(self.val_split, dets, "bbox"),
                "SEGM": coco.coco_map(self.val_split, dets, "segm")}


def make(scale: str, overrides: dict) -> MaskRcnnWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return MaskRcnnWorkload(get_spec("maskrcnn"), scale, config)
