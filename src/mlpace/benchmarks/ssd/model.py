"""SSD in plain torch: SSD-ResNet34 (MLPerf Training's, 300x300), SSD-MobileNet-v1 (MLPerf
Inference's light detector, 300x300) and SSD-mini with either backbone (same families, smaller).

One `SSD` class serves all: a backbone giving the first feature map(s), extra blocks that halve
the resolution (a 1x1 conv then a 3x3 conv), and one predictor conv per feature map giving 4 box
offsets and K+1 class logits per default box.

- ResNet (`Backbone`): stages of basic blocks (ResNet-34's first three for the reference, the
  last at stride 1 as MLPerf's is), one feature map; "expand" blocks with biases and no
  BatchNorm; 3x3 predictors; SSD's default boxes (8732 at 300x300). Module names map onto the
  tensor names the closed rules list for `weights_initialization` (see `mlperf_tensor_names`).
- MobileNet-v1 (`MobileNetV1`): a 3x3 stride-2 conv, then depthwise-separable blocks (3x3
  depthwise conv + BN + ReLU6, 1x1 pointwise conv + BN + ReLU6), every width times a width
  multiplier. The reference is MobileNet-v1 1.0 laid out as TensorFlow's ssd_mobilenet_v1 (the
  model MLPerf Inference serves): feature maps from conv11 (19x19, 512 ch) and conv13 (10x10,
  1024 ch), four extra blocks with BN + ReLU6 (5/3/2/1), 1x1 predictors and TF's SSD anchors
  (scales 0.2-0.95, 3 boxes per cell on the first map and 6 elsewhere: 1917 boxes). Its mini
  is MobileNet-v1's first seven blocks for 64x64 scenes (`MOBILENET_MINI`), width 0.25.

The box coder, IoU and NMS are shared with Mask R-CNN (`mlpace.benchmarks.detection`):
matching is IoU >= 0.5 plus each ground truth's best default box; the loss is smooth-L1 +
softmax cross-entropy with 3:1 hard negative mining (Liu et al., 2016; MLPerf's SSD-ResNet34
recipe, also used for the MobileNet variant: TF's ssd_mobilenet_v1 trains with sigmoid scores).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from mlpace.benchmarks.detection import batched_nms, box_iou, cxcywh_to_xyxy, decode, encode

# MobileNet-v1 1.0 (Howard et al., 2017): (pointwise width, stride) of the 13 depthwise-separable
# blocks after a 32-wide stride-2 conv. SSD reads blocks 11 and 13 (1-based).
MOBILENET_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# The mini: its first seven blocks, read at blocks 5 and 7 (strides 8 and 16: the 8x8 and 4x4
# maps at 64x64 that SSD-mini's ResNet gives).
MOBILENET_MINI = MOBILENET_V1[:7]


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
    """ResNet stages of basic blocks; one feature map, the last stage's."""
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
        self.feature_channels = [in_ch]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.stages(self.pool0(torch.relu(self.bn0(self.conv0(x)))))]


class DepthwiseSeparable(nn.Module):
    """MobileNet's block: 3x3 depthwise conv + BN + ReLU6, then 1x1 pointwise conv + BN + ReLU6."""
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False)
        self.bn_dw = nn.BatchNorm2d(in_ch, eps=1e-3)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(out_ch, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn_dw(self.depthwise(x)))
        return F.relu6(self.bn_pw(self.pointwise(x)))


class MobileNetV1(nn.Module):
    """MobileNet-v1: a 3x3 stride-2 conv + BN + ReLU6, then depthwise-separable blocks
    (`layout`: (width, stride) each); returns the outputs of the blocks in `taps` (1-based).
    Every width is multiplied by `width_multiplier` (at least `min_depth`, as TF's is)."""
    def __init__(self, layout=MOBILENET_V1, taps=(11, 13), width_multiplier: float = 1.0,
                 stem: int = 32, min_depth: int = 8):
        super().__init__()
        def depth(d: int) -> int:
            return max(int(d * width_multiplier), min_depth)
        self.conv0 = nn.Conv2d(3, depth(stem), 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(depth(stem), eps=1e-3)
        blocks, in_ch = [], depth(stem)
        for width, stride in layout:
            blocks.append(DepthwiseSeparable(in_ch, depth(width), stride))
            in_ch = depth(width)
        self.blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)
        self.feature_channels = [depth(layout[t - 1][0]) for t in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self.bn0(self.conv0(x)))
        maps = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in self.taps:
                maps.append(x)
            if i == self.taps[-1]:
                break
        return maps


class Expand(nn.Module):
    """1x1 "transition" conv then a 3x3 conv that shrinks the feature map: with biases and
    ReLU (SSD-ResNet34), or `batch_norm` with BN and ReLU6 (TF's ssd_mobilenet_v1)."""
    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int, padding: int,
                 batch_norm: bool = False):
        super().__init__()
        self.trans_conv = nn.Conv2d(in_ch, mid_ch, 1, bias=not batch_norm)
        self.conv = nn.Conv2d(mid_ch, out_ch, 3, stride=stride, padding=padding, bias=not batch_norm)
        self.batch_norm = batch_norm
        if batch_norm:
            self.trans_bn = nn.BatchNorm2d(mid_ch, eps=1e-3)
            self.bn = nn.BatchNorm2d(out_ch, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_norm:
            return F.relu6(self.bn(self.conv(F.relu6(self.trans_bn(self.trans_conv(x))))))
        return torch.relu(self.conv(torch.relu(self.trans_conv(x))))


class SSD(nn.Module):
    def __init__(self, num_classes: int, image_size: int, backbone: nn.Module,
                 expand: list[tuple[int, int, int, int]], anchor_shapes: list[list[tuple[float, float]]],
                 predictor_kernel: int = 3, expand_batch_norm: bool = False):
        """`backbone`: returns its feature maps (channels in `feature_channels`); `expand`:
        (mid, out, stride, padding) per extra feature map; `anchor_shapes`: per feature map
        the (w, h) of each cell's default boxes in [0, 1] units (`ssd_anchor_shapes`)."""
        super().__init__()
        self.num_classes = num_classes          # including background (label 0)
        self.image_size = image_size
        self.backbone = backbone
        channels = list(backbone.feature_channels)
        blocks, in_ch = [], channels[-1]
        for mid, out, stride, padding in expand:
            blocks.append(Expand(in_ch, mid, out, stride, padding, expand_batch_norm))
            in_ch = out
            channels.append(out)
        self.expand = nn.ModuleList(blocks)
        self.boxes_per_cell = [len(shapes) for shapes in anchor_shapes]
        self.predictors = nn.ModuleList(
            nn.Conv2d(c, n * (4 + num_classes), predictor_kernel, padding=predictor_kernel // 2)
            for c, n in zip(channels, self.boxes_per_cell))
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):   # a depthwise conv's fan-out is its fan-in, 9
                nn.init.kaiming_normal_(m.weight, mode="fan_in" if m.groups > 1 else "fan_out",
                                        nonlinearity="relu")
        self.eval()                             # (the size probe must not touch BN statistics)
        with torch.no_grad():
            sizes = [f.shape[-1] for f in self.features(torch.zeros(1, 3, image_size, image_size))]
        self.train()
        self.feature_sizes = sizes
        self.register_buffer("anchors", default_boxes(sizes, anchor_shapes), persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.backbone(x))
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
    return SSD(num_classes, 300, backbone, expand,
               ssd_anchor_shapes(300, [21, 45, 99, 153, 207, 261, 315],
                                 [(2,), (2, 3), (2, 3), (2, 3), (2,), (2,)]))


def ssd_mobilenet_v1(num_classes: int = 81, width_multiplier: float = 1.0) -> SSD:
    """TF's ssd_mobilenet_v1 (MLPerf Inference's ssd-mobilenet) at 300x300: MobileNet-v1
    conv11 and conv13 (19x19, 10x10), extra blocks of 512/256/256/128 (5/3/2/1, BN + ReLU6,
    their 1x1 convs half as wide), 1x1 predictors, 1917 default boxes."""
    backbone = MobileNetV1(MOBILENET_V1, (11, 13), width_multiplier, min_depth=16)
    expand = [(256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 2, 1), (64, 128, 2, 1)]
    return SSD(num_classes, 300, backbone, expand, tf_anchor_shapes(6),
               predictor_kernel=1, expand_batch_norm=True)


def mini_anchor_shapes(image_size: int):
    """SSD-mini's default boxes, whatever the backbone: 4 per cell on 8/4/2/1 maps at 64x64."""
    return ssd_anchor_shapes(image_size, [s * image_size / 64 for s in (9, 17, 30, 46, 64)], [(2,)] * 4)


def ssd_mini(num_classes: int, image_size: int = 64, widths=(16, 32, 64), blocks=(1, 1, 1)) -> SSD:
    """SSD-mini: three small basic-block stages (stride 2 each, no max-pool) and three expand
    blocks, i.e. 8/4/2/1 feature maps at 64x64."""
    backbone = Backbone(tuple(blocks), tuple(widths), (1, 2, 2), stem_pool=False)
    c = widths[-1]
    expand = [(c // 2, c, 2, 1), (c // 2, c, 2, 1), (c // 2, c, 2, 1)]
    return SSD(num_classes, image_size, backbone, expand, mini_anchor_shapes(image_size))


def ssd_mobilenet_mini(num_classes: int, image_size: int = 64, width_multiplier: float = 0.25) -> SSD:
    """SSD-MobileNet-mini: `MOBILENET_MINI` (a 3x3 stride-2 conv and seven depthwise-separable
    blocks) read at blocks 5 and 7 (8x8 and 4x4 at 64x64), two extra blocks with BN + ReLU6
    (2x2, 1x1), 3x3 predictors and the same 340 default boxes as the ResNet SSD-mini."""
    backbone = MobileNetV1(MOBILENET_MINI, (5, 7), width_multiplier)
    c = backbone.feature_channels[-1]
    expand = [(c // 4, c // 2, 2, 1), (c // 4, c // 2, 2, 1)]
    return SSD(num_classes, image_size, backbone, expand, mini_anchor_shapes(image_size),
               expand_batch_norm=True)


def mlperf_tensor_names(model: SSD) -> list[str]:
    """Parameter names as MLPerf's closed ssd rules spell them (MXNet style, `ssd0_...`)."""
    bb = model.backbone
    if not isinstance(bb, Backbone):    # no closed rules list these: torch's names, MXNet-spelt
        return ["ssd0_" + name.replace(".", "_") for name, _ in model.named_parameters()]
    names = []
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
def ssd_anchor_shapes(image_size: int, box_sizes: list[float],
                      aspect_ratios: list[tuple[int, ...]]) -> list[list[tuple[float, float]]]:
    """SSD's (w, h) per cell and feature map: sizes s_k (pixels, one more than maps), the box
    sqrt(s_k s_k+1) and for each ratio r the pair (s sqrt r, s / sqrt r), (s / sqrt r, s sqrt r)."""
    out = []
    for k, ratios in enumerate(aspect_ratios):
        s = box_sizes[k] / image_size
        s_next = math.sqrt(box_sizes[k] * box_sizes[k + 1]) / image_size
        shapes = [(s, s), (s_next, s_next)]
        for r in ratios:
            shapes += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        out.append(shapes)
    return out


def tf_anchor_shapes(num_layers: int, min_scale: float = 0.2, max_scale: float = 0.95,
                     ratios=(1.0, 2.0, 0.5, 3.0, 1 / 3)) -> list[list[tuple[float, float]]]:
    """TF object detection's `ssd_anchor_generator` as ssd_mobilenet_v1 configures it: scales
    linear from min to max, per cell one box per ratio plus one of scale sqrt(s_k s_k+1); the
    first map has only (0.1, 1), (s_0, 2), (s_0, 1/2) ("reduce_boxes_in_lowest_layer")."""
    scales = [min_scale + (max_scale - min_scale) * k / (num_layers - 1) for k in range(num_layers)] + [1.0]
    out = []
    for k in range(num_layers):
        if k == 0:
            pairs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            pairs = [(scales[k], r) for r in ratios] + [(math.sqrt(scales[k] * scales[k + 1]), 1.0)]
        out.append([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in pairs])
    return out


def default_boxes(feature_sizes: list[int], anchor_shapes: list[list[tuple[float, float]]]) -> torch.Tensor:
    """Default boxes (cx, cy, w, h) in [0, 1], ordered as the predictors' outputs are."""
    out = []
    for f, shapes in zip(feature_sizes, anchor_shapes):
        for i, j in itertools.product(range(f), repeat=2):
            for w, h in shapes:
                out.append(((j + 0.5) / f, (i + 0.5) / f, w, h))
    return torch.tensor(out, dtype=torch.float32).clamp_(0, 1)


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
