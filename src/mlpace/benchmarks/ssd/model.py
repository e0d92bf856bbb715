"""SSD in plain torch: SSD-ResNet34 (MLPerf reference) and SSD-mini (same family, smaller).

One `SSD` class serves both: a ResNet backbone of basic blocks (ResNet-34's first three stages
for the reference, with the last stage at stride 1 as MLPerf's is), "expand" blocks that halve
the resolution (1x1 conv then 3x3 conv, biases, no BatchNorm), and one 3x3 predictor conv per
feature map giving 4 box offsets and K+1 class logits per default box. Module names map onto the
tensor names the closed rules list for `weights_initialization` (see `mlperf_tensor_names`).

Boxes: default boxes are (cx, cy, w, h) in [0, 1]; offsets are encoded with SSD's variances
(0.1, 0.2); matching is IoU >= 0.5 plus each ground truth's best default box; the loss is
smooth-L1 + cross-entropy with 3:1 hard negative mining (Liu et al., 2016; MLPerf reference).
Non-maximum suppression is plain torch (greedy, per class).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VARIANCES = (0.1, 0.2)


# ----------------------------------------------------------------------------- network
class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.has_shortcut = stride != 1 or in_ch != out_ch
        if self.has_shortcut:
            self.conv_sc = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.bn_sc = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (self.bn_sc(self.conv_sc(x)) if self.has_shortcut else x))


class Backbone(nn.Module):
    def __init__(self, blocks, widths, strides, stem_pool: bool):
        super().__init__()
        self.conv0 = nn.Conv2d(3, widths[0], 7 if stem_pool else 3, stride=2,
                               padding=3 if stem_pool else 1, bias=False)
        self.bn0 = nn.BatchNorm2d(widths[0])
        self.pool0 = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        stages, in_ch = [], widths[0]
        for n, width, stride in zip(blocks, widths, strides):
            stages.append(nn.Sequential(*[BasicBlock(in_ch if u == 0 else width, width,
                                                     stride if u == 0 else 1) for u in range(n)]))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.pool0(torch.relu(self.bn0(self.conv0(x)))))


class Expand(nn.Module):
    """1x1 "transition" conv then a 3x3 conv that shrinks the feature map."""
    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int, padding: int):
        super().__init__()
        self.trans_conv = nn.Conv2d(in_ch, mid_ch, 1)
        self.conv = nn.Conv2d(mid_ch, out_ch, 3, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(torch.relu(self.trans_conv(x))))


class SSD(nn.Module):
    def __init__(self, num_classes: int, image_size: int, backbone: Backbone,
                 expand: list[tuple[int, int, int, int]], box_sizes: list[float],
                 aspect_ratios: list[tuple[int, ...]]):
        """`expand`: (mid, out, stride, padding) per extra feature map; `box_sizes`: pixels,
        one more than feature maps (SSD's s_k); `aspect_ratios`: extra ratios per map."""
        super().__init__()
        self.num_classes = num_classes          # including background (label 0)
        self.image_size = image_size
        self.backbone = backbone
        blocks, in_ch, channels = [], backbone.out_channels, [backbone.out_channels]
        for mid, out, stride, padding in expand:
            blocks.append(Expand(in_ch, mid, out, stride, padding))
            in_ch = out
            channels.append(out)
        self.expand = nn.ModuleList(blocks)
        self.boxes_per_cell = [2 + 2 * len(r) for r in aspect_ratios]
        self.predictors = nn.ModuleList(
            nn.Conv2d(c, n * (4 + num_classes), 3, padding=1)
            for c, n in zip(channels, self.boxes_per_cell))
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        with torch.no_grad():
            sizes = [f.shape[-1] for f in self.features(torch.zeros(1, 3, image_size, image_size))]
        self.feature_sizes = sizes
        self.register_buffer("anchors", default_boxes(sizes, image_size, box_sizes, aspect_ratios),
                             persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = [self.backbone(x)]
        for block in self.expand:
            maps.append(block(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box offsets B x A x 4 and class logits B x A x (K+1), A = all default boxes."""
        locs, confs = [], []
        for fmap, predictor in zip(self.features(x), self.predictors):
            out = predictor(fmap).permute(0, 2, 3, 1)
            out = out.reshape(x.shape[0], -1, 4 + self.num_classes)
            locs.append(out[..., :4])
            confs.append(out[..., 4:])
        return torch.cat(locs, 1), torch.cat(confs, 1)


def ssd_resnet34(num_classes: int = 81) -> SSD:
    """MLPerf's SSD-ResNet34 at 300x300: 8732 default boxes on 38/19/10/5/3/1 maps."""
    backbone = Backbone((3, 4, 6), (64, 128, 256), (1, 2, 1), stem_pool=True)
    expand = [(256, 512, 2, 1), (256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0)]
    return SSD(num_classes, 300, backbone, expand, [21, 45, 99, 153, 207, 261, 315],
               [(2,), (2, 3), (2, 3), (2, 3), (2,), (2,)])


def ssd_mini(num_classes: int, image_size: int = 64, widths=(16, 32, 64), blocks=(1, 1, 1)) -> SSD:
    """SSD-mini: three small basic-block stages (stride 2 each, no max-pool) and three expand
    blocks, i.e. 8/4/2/1 feature maps at 64x64."""
    backbone = Backbone(tuple(blocks), tuple(widths), (1, 2, 2), stem_pool=False)
    c = widths[-1]
    expand = [(c // 2, c, 2, 1), (c // 2, c, 2, 1), (c // 2, c, 2, 1)]
    sizes = [s * image_size / 64 for s in (9, 17, 30, 46, 64)]
    return SSD(num_classes, image_size, backbone, expand, sizes, [(2,)] * 4)


def mlperf_tensor_names(model: SSD) -> list[str]:
    """Parameter names as MLPerf's closed ssd rules spell them (MXNet style, `ssd0_...`)."""
    names = []
    bb = model.backbone
    names += ["ssd0_resnetmlperf0_conv0_weight", "ssd0_resnetmlperf0_batchnorm0_gamma",
              "ssd0_resnetmlperf0_batchnorm0_beta"]
    for s, stage in enumerate(bb.stages, start=1):
        index = itertools.count()   # MXNet numbers a stage's convs in creation order
        for block in stage:
            for conv in ("conv1", "conv2", "conv_sc"):
                if conv == "conv_sc" and not block.has_shortcut:
                    continue
                k = next(index)
                prefix = f"ssd0_resnetmlperf0_stage{s}"
                names += [f"{prefix}_conv{k}_weight", f"{prefix}_batchnorm{k}_gamma",
                          f"{prefix}_batchnorm{k}_beta"]
    for i in range(len(model.expand)):
        names += [f"ssd0_expand_trans_conv{i}_weight", f"ssd0_expand_trans_conv{i}_bias",
                  f"ssd0_expand_conv{i}_weight", f"ssd0_expand_conv{i}_bias"]
    for i in range(len(model.predictors)):
        names += [f"ssd0_convpredictor{i}_conv0_weight", f"ssd0_convpredictor{i}_conv0_bias"]
    return names


# ----------------------------------------------------------------------------- boxes
def default_boxes(feature_sizes: list[int], image_size: int, box_sizes: list[float],
                  aspect_ratios: list[tuple[int, ...]]) -> torch.Tensor:
    """SSD default boxes (cx, cy, w, h) in [0, 1], ordered as the predictors' outputs are."""
    out = []
    for k, (f, ratios) in enumerate(zip(feature_sizes, aspect_ratios)):
        s = box_sizes[k] / image_size
        s_next = math.sqrt(box_sizes[k] * box_sizes[k + 1]) / image_size
        shapes = [(s, s), (s_next, s_next)]
        for r in ratios:
            shapes += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        for i, j in itertools.product(range(f), repeat=2):
            for w, h in shapes:
                out.append(((j + 0.5) / f, (i + 0.5) / f, w, h))
    return torch.tensor(out, dtype=torch.float32).clamp_(0, 1)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (N x 4, x1y1x2y2) with every box in `b` (M x 4): N x M."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode(boxes_xyxy: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Offsets of boxes (x1y1x2y2) from anchors (cx, cy, w, h), in any one unit. Variances
    (0.1, 0.2) are SSD's; Faster R-CNN's weights (10, 10, 5, 5) are the same thing inverted."""
    wh = (boxes_xyxy[..., 2:] - boxes_xyxy[..., :2]).clamp(min=1e-6)
    cxcy = (boxes_xyxy[..., :2] + boxes_xyxy[..., 2:]) / 2
    return torch.cat([(cxcy - anchors[..., :2]) / (variances[0] * anchors[..., 2:]),
                      torch.log(wh / anchors[..., 2:]) / variances[1]], -1)


def decode(offsets: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Inverse of `encode`: x1y1x2y2 in the anchors' unit."""
    cxcy = anchors[..., :2] + offsets[..., :2] * variances[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp((offsets[..., 2:] * variances[1]).clamp(max=math.log(1000 / 16)))
    return cxcy_wh_to_xyxy(cxcy, wh)


def cxcy_wh_to_xyxy(cxcy: torch.Tensor, wh: torch.Tensor) -> torch.Tensor:
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1)


def match(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anchors: torch.Tensor,
          iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression targets (A x 4) and class targets (A, 0 = background) of one image."""
    if len(gt_boxes) == 0:
        return torch.zeros_like(anchors), torch.zeros(len(anchors), dtype=torch.int64)
    iou = box_iou(gt_boxes, cxcywh_to_xyxy(anchors))          # G x A
    best_iou, best_gt = iou.max(0)
    best_anchor = iou.argmax(1)                                # every object gets one box
    best_gt[best_anchor] = torch.arange(len(gt_boxes))
    best_iou[best_anchor] = 2.0
    labels = gt_labels[best_gt].clone()
    labels[best_iou < iou_threshold] = 0
    return encode(gt_boxes[best_gt], anchors), labels


def ssd_loss(locs: torch.Tensor, logits: torch.Tensor, loc_targets: torch.Tensor,
             labels: torch.Tensor, neg_pos_ratio: int = 3) -> torch.Tensor:
    """Smooth-L1 on positives + cross-entropy on positives and the hardest negatives,
    divided by each image's number of positives, averaged over the batch."""
    positive = labels > 0
    num_pos = positive.sum(1)
    loc_loss = (F.smooth_l1_loss(locs, loc_targets, reduction="none").sum(-1) * positive).sum(1)
    conf = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
    negative_conf = conf.detach().masked_fill(positive, 0.0)
    rank = negative_conf.argsort(1, descending=True).argsort(1)
    hard_negative = rank < (neg_pos_ratio * num_pos)[:, None]
    conf_loss = (conf * (positive | hard_negative)).sum(1)
    per_image = (loc_loss + conf_loss) / num_pos.clamp(min=1)
    return (per_image * (num_pos > 0)).sum() / (num_pos > 0).sum().clamp(min=1)


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


@torch.no_grad()
def detect(locs: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor,
           score_threshold: float = 0.05, iou_threshold: float = 0.5, max_detections: int = 100,
           candidates_per_class: int = 200) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image: boxes (x1y1x2y2 in [0, 1]), scores and labels (1..K) after NMS."""
    results = []
    scores_all = logits.float().softmax(-1)[..., 1:]
    boxes_all = decode(locs.float(), anchors).clamp(0, 1)
    for boxes, scores in zip(boxes_all, scores_all):
        top_scores, top_idx = scores.topk(min(candidates_per_class, len(scores)), dim=0)  # per class
        cls = torch.arange(scores.shape[1]).expand_as(top_idx)
        keep = top_scores > score_threshold
        cand_boxes, cand_scores, cand_cls = boxes[top_idx[keep]], top_scores[keep], cls[keep]
        kept = batched_nms(cand_boxes, cand_scores, cand_cls, iou_threshold, max_detections)
        results.append((cand_boxes[kept], cand_scores[kept], cand_cls[kept] + 1))
    return results
