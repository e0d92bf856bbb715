"""Mask R-CNN in plain torch: ResNet-50-FPN (MLPerf reference) and Mask R-CNN-mini (same family).

    image -> ResNet (bottleneck stages, mlpace.benchmarks.resnet) -> FPN (1x1 "inner" + 3x3
    "layer" convs, top-down sum) -> RPN (shared 3x3 conv, objectness + box deltas per anchor,
    per level) -> proposals (top-k, NMS) -> RoIAlign -> box head (fc6, fc7, class + class-
    specific deltas) and mask head (3x3 convs, 2x transposed conv, per-class mask logits)

RoIAlign is `grid_sample` at 2x2 points per output bin, averaged (the "aligned" convention:
pixel p of a stride-s map sits at p / s); in training on small maps the same sampling is done
as two matrix products, whose backward is much cheaper on CPU. Each RoI reads the FPN level chosen by its size
(level = canonical_level + log2(sqrt(area) / canonical_size), as in the FPN paper). Boxes use
the coder shared with SSD (`mlpace.benchmarks.detection`; RPN weights 1, RoI head
weights 10/10/5/5) and plain-torch NMS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mlpace.benchmarks.detection import batched_nms, decode
from mlpace.benchmarks.resnet.model import ResNet

RPN_VARIANCES = (1.0, 1.0)
ROI_VARIANCES = (0.1, 0.2)          # = Faster R-CNN's box coder weights (10, 10, 5, 5)


def roi_align(feature: torch.Tensor, stride: float, boxes: torch.Tensor, size: int,
              sampling: int = 2) -> torch.Tensor:
    """Bilinear crops of one image's feature map (C x H x W) at `boxes` (N x 4, x1y1x2y2 in image
    pixels): N x C x size x size, each bin the mean of sampling x sampling points."""
    n, points = len(boxes), size * sampling
    if n == 0:
        return feature.new_zeros(0, feature.shape[0], size, size)
    h, w = feature.shape[-2:]
    if _separable_pays(feature):
        return _roi_align_separable(feature[None], stride, boxes, boxes.new_zeros(n, dtype=torch.int64),
                                    size, sampling)
    t = (torch.arange(points, dtype=feature.dtype, device=feature.device) + 0.5) / points
    xs = boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * t          # N x P, pixels
    ys = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t
    gx = xs / (stride * w) * 2 - 1                                    # grid_sample's [-1, 1]
    gy = ys / (stride * h) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)  # N x P x P x 2
    out = F.grid_sample(feature[None], grid.reshape(1, n * points, points, 2), align_corners=False)
    out = out.view(feature.shape[0], n, points, points).transpose(0, 1)
    return F.avg_pool2d(out, sampling) if sampling > 1 else out


def _separable_pays(features: torch.Tensor) -> bool:
    """The separable form costs more arithmetic than grid_sample forward (it reads the whole
    map for each box) but its backward is far cheaper on CPU: use it in training, on maps up
    to 32x32 pixels (the mini's 16x16 and 8x8 levels)."""
    return features.requires_grad and torch.is_grad_enabled() and features.shape[-2] * features.shape[-1] <= 32 * 32


def roi_align_batch(features: torch.Tensor, stride: float, boxes: torch.Tensor, image: torch.Tensor,
                    size: int, sampling: int = 2) -> torch.Tensor:
    """`roi_align` of boxes over a batch of feature maps (B x C x H x W); `image` (N) says which
    map each box reads. In training on small maps all boxes in one batched call, else image by image."""
    if _separable_pays(features):
        return _roi_align_separable(features, stride, boxes, image, size, sampling)
    out = features.new_zeros(len(boxes), features.shape[1], size, size)
    for i in image.unique().tolist():
        rows = (image == i).nonzero().flatten()
        # grid_sample runs in float32 under autocast: back to the features' dtype
        out[rows] = roi_align(features[i], stride, boxes[rows], size, sampling).to(out.dtype)
    return out


def _roi_align_separable(features: torch.Tensor, stride: float, boxes: torch.Tensor, image: torch.Tensor,
                         size: int, sampling: int) -> torch.Tensor:
    """`roi_align_batch` as matrix products. Bilinear sampling on a grid of points is separable:
    crop = Ay @ feature @ Ax^T, with Ay (size x H) and Ax (size x W) holding each bin's
    interpolation weights averaged over its sampling points. Same values as grid_sample with
    zero padding (an index outside the map gets no weight), but on CPU its backward is a
    matrix product instead of grid_sample's slow scatter: 2-8x faster on small maps."""
    n, points = len(boxes), size * sampling
    b, c, h, w = features.shape
    t = (torch.arange(points, dtype=boxes.dtype, device=boxes.device) + 0.5) / points   # weights in the boxes' precision

    def weights(lo: torch.Tensor, hi: torch.Tensor, length: int) -> torch.Tensor:
        u = ((lo + (hi - lo) * t) / stride - 0.5)[..., None]      # N x P x 1, in pixel indices
        j = torch.arange(length, dtype=boxes.dtype, device=boxes.device)
        tent = (1 - (j - u).abs()).clamp(min=0)                   # bilinear: 1 - distance, 2 nearest
        return tent.view(n, size, sampling, length).mean(2)       # N x size x length

    ax = weights(boxes[:, 0:1], boxes[:, 2:3], w).to(features.dtype)
    ay = weights(boxes[:, 1:2], boxes[:, 3:4], h).to(features.dtype)
    # Feature @ Ax^T for all of an image's boxes in one product (its boxes' Ax side by side, in
    # slots padded to the busiest image's count): no per-box copy of the feature map.
    counts = torch.bincount(image, minlength=b)
    order = torch.argsort(image, stable=True)
    slot = torch.empty_like(image)
    slot[order] = torch.arange(n, device=image.device) - (counts.cumsum(0) - counts)[image[order]]
    slots = int(counts.max())
    ax_padded = ax.new_zeros(b, slots, size, w)
    ax_padded[image, slot] = ax
    rows = features.reshape(b, c * h, w) @ ax_padded.view(b, slots * size, w).transpose(1, 2)
    rows = rows.view(b, c, h, slots, size)[image, :, :, slot]      # N x C x H x size
    return ay[:, None] @ rows                                      # N x C x size x size


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], out_channels: int, extra_pool: bool):
        super().__init__()
        self.inner = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.layer = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.extra_pool = extra_pool     # P6 = max-pool of the coarsest level (RPN only, as in FPN)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        top = self.inner[-1](feats[-1])
        outs = [self.layer[-1](top)]
        for f, inner, layer in zip(feats[-2::-1], self.inner[-2::-1], self.layer[-2::-1]):
            top = inner(f) + F.interpolate(top, size=f.shape[-2:], mode="nearest")
            outs.insert(0, layer(top))
        if self.extra_pool:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class MaskRCNN(nn.Module):
    def __init__(self, num_classes: int, body: ResNet, stage_channels: list[int], fpn_stages: list[int],
                 strides: list[int], anchor_sizes: list[tuple[float, ...]], channels: int,
                 extra_pool: bool, fc_dim: int, mask_convs: int, canonical_level: int,
                 canonical_size: float, mask_pool: int = 14):
        super().__init__()
        self.num_classes = num_classes           # including background
        self.body, self.fpn_stages = body, fpn_stages
        self.fpn = FPN([stage_channels[s] for s in fpn_stages], channels, extra_pool)
        self.strides = strides                   # one per FPN output (P6 included)
        self.anchor_sizes = anchor_sizes
        self.ratios = (0.5, 1.0, 2.0)
        per_cell = len(anchor_sizes[0]) * len(self.ratios)
        self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(channels, per_cell, 1)
        self.rpn_bbox = nn.Conv2d(channels, 4 * per_cell, 1)
        self.fc6 = nn.Linear(channels * 49, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.box_cls = nn.Linear(fc_dim, num_classes)
        self.box_bbox = nn.Linear(fc_dim, 4 * num_classes)
        self.mask_fcn = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(mask_convs))
        self.mask_deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.mask_logits = nn.Conv2d(channels, num_classes, 1)
        self.canonical_level, self.canonical_size = canonical_level, canonical_size
        self.mask_pool = mask_pool               # RoIAlign size of the mask head; masks are 2x that
        for m in [self.rpn_conv, self.rpn_cls, self.rpn_bbox]:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        nn.init.normal_(self.box_cls.weight, std=0.01)
        nn.init.normal_(self.box_bbox.weight, std=0.001)
        for m in [*self.mask_fcn, self.mask_deconv, self.mask_logits]:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in [self.box_cls, self.box_bbox, *self.mask_fcn, self.mask_deconv, self.mask_logits]:
            nn.init.zeros_(m.bias)
        self._anchor_cache: dict = {}

    # --- features and RPN ------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.body
        x = b.pool0(torch.relu(b.bn0(b.conv0(x))))
        feats = []
        for stage in b.stages:
            x = stage(x)
            feats.append(x)
        return self.fpn([feats[s] for s in self.fpn_stages])

    def anchors(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level: anchors (H*W*A x 4, cx cy w h in pixels), ordered as the RPN outputs."""
        key = tuple(f.shape[-2:] for f in feats)
        if key not in self._anchor_cache:
            levels = []
            for f, stride, sizes in zip(feats, self.strides, self.anchor_sizes):
                h, w = f.shape[-2:]
                shapes = torch.tensor([(s * math.sqrt(1 / r), s * math.sqrt(r)) for s in sizes
                                       for r in self.ratios])                     # A x (w, h)
                ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                centres = (torch.stack([xs, ys], -1).reshape(-1, 1, 2).float() + 0.5) * stride
                a = torch.cat(torch.broadcast_tensors(centres, shapes[None]), -1).reshape(-1, 4)
                levels.append(a.to(f.device))
            self._anchor_cache[key] = levels
        return self._anchor_cache[key]

    def rpn(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: objectness B x (H*W*A) and deltas B x (H*W*A) x 4."""
        logits, deltas = [], []
        for f in feats:
            t = torch.relu(self.rpn_conv(f))
            b = f.shape[0]
            logits.append(self.rpn_cls(t).permute(0, 2, 3, 1).reshape(b, -1))
            deltas.append(self.rpn_bbox(t).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return logits, deltas

    @torch.no_grad()
    def proposals(self, logits, deltas, anchors, image_size: tuple[int, int], pre_nms: int,
                  post_nms: int, nms_threshold: float = 0.7) -> list[torch.Tensor]:
        """Per image: up to `post_nms` proposal boxes (x1y1x2y2 pixels), best first."""
        h, w = image_size
        out = []
        for i in range(logits[0].shape[0]):
            boxes, scores, levels = [], [], []
            for lvl, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
                s, idx = lg[i].topk(min(pre_nms, lg.shape[1]))
                b = decode(dl[i][idx].float(), an[idx], RPN_VARIANCES)
                b = torch.stack([b[:, 0].clamp(0, w), b[:, 1].clamp(0, h),
                                 b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], 1)
                keep = ((b[:, 2] - b[:, 0]) > 1) & ((b[:, 3] - b[:, 1]) > 1)
                boxes.append(b[keep]), scores.append(s[keep].float())
                levels.append(torch.full((int(keep.sum()),), lvl, device=b.device))
            boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
            keep = batched_nms(boxes, scores, levels, nms_threshold, post_nms)   # within each level
            out.append(boxes[keep])
        return out

    # --- RoI heads --------------------------------------------------------------------------
    def roi_levels(self, boxes: torch.Tensor) -> torch.Tensor:
        n_roi_levels = len(self.fpn.inner)        # RoIs never read P6
        scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6).sqrt()
        level = torch.floor(self.canonical_level + torch.log2(scale / self.canonical_size + 1e-8))
        return level.clamp(0, n_roi_levels - 1).long()

    def pool(self, feats: list[torch.Tensor], boxes: list[torch.Tensor], size: int) -> torch.Tensor:
        """RoIAlign of every image's boxes, each from its FPN level: sum(N_i) x C x size x size."""
        image = torch.cat([torch.full((len(b),), i, dtype=torch.int64, device=b.device)
                           for i, b in enumerate(boxes)])
        boxes = torch.cat(boxes)
        levels = self.roi_levels(boxes)
        crops = feats[0].new_zeros(len(boxes), feats[0].shape[1], size, size)
        for lvl in range(len(self.fpn.inner)):
            sel = (levels == lvl).nonzero().flatten()
            if len(sel):
                crops[sel] = roi_align_batch(feats[lvl], self.strides[lvl], boxes[sel], image[sel],
                                             size).to(crops.dtype)
        return crops

    def box_head(self, feats, boxes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(feats, boxes, 7).flatten(1)
        x = torch.relu(self.fc7(torch.relu(self.fc6(x))))
        return self.box_cls(x), self.box_bbox(x).view(len(x), self.num_classes, 4)   # also with no RoIs

    def mask_head(self, feats, boxes: list[torch.Tensor]) -> torch.Tensor:
        x = self.pool(feats, boxes, self.mask_pool)
        for conv in self.mask_fcn:
            x = torch.relu(conv(x))
        return self.mask_logits(torch.relu(self.mask_deconv(x)))     # N x K+1 x 2S x 2S


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine (buffers, not parameters: no gradients, no
    updates), as maskrcnn-benchmark's layers/batch_norm.py (which, like it, adds no epsilon)."""

    def __init__(self, channels: int):
        super().__init__()
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d inside `module` by a FrozenBatchNorm2d. It starts as the
    identity (a fresh BatchNorm's values; not ResNet's zero-initialised last gamma, which,
    frozen, would switch a block's branch off for good) until a checkpoint's values load."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features))
        else:
            freeze_batchnorm(child)
    return module


def maskrcnn_resnet50_fpn(num_classes: int = 81) -> MaskRCNN:
    """MLPerf's Mask R-CNN (maskrcnn-benchmark, e2e_mask_rcnn_R_50_FPN_1x): a ResNet-50 body
    without classifier, strided in the first 1x1 of a block (STRIDE_IN_1X1, the MSRA ResNet),
    with frozen BatchNorm everywhere and the stem and first stage frozen (FREEZE_CONV_BODY_AT
    2); FPN P2-P6 (256 ch), anchors 32-512, 4-conv mask head."""
    body = ResNet((3, 4, 6, 3), (64, 128, 256, 512), None, imagenet_stem=True, stride_in_1x1=True)
    freeze_batchnorm(body)
    for frozen in (body.conv0, body.stages[0]):
        frozen.requires_grad_(False)
    return MaskRCNN(num_classes, body, [256, 512, 1024, 2048], [0, 1, 2, 3], [4, 8, 16, 32, 64],
                    [(32,), (64,), (128,), (256,), (512,)], channels=256, extra_pool=True,
                    fc_dim=1024, mask_convs=4, canonical_level=2, canonical_size=224)


def maskrcnn_mini(num_classes: int, widths=(8, 16, 32), channels: int = 32) -> MaskRCNN:
    """Mask R-CNN-mini for 64x64 scenes: a 3-stage bottleneck ResNet (strides 2/4/8), FPN on
    the stride-4 and stride-8 stages, two anchor sizes per level, a 2-conv mask head on 7x7
    RoIs giving 14x14 masks (objects are at most 33 px wide). Unlike the reference, its body
    trains from scratch (no ImageNet weights to freeze), so its BatchNorm and every layer
    train; its unused 1-class `fc1` stays so that the seeded initialisation (and the mini
    target's calibration) is unchanged; it has no gradient and does no work."""
    from mlpace.benchmarks.resnet.model import resnet_mini
    body = resnet_mini(1, widths=widths)
    return MaskRCNN(num_classes, body, [w * 4 for w in widths], [1, 2], [4, 8],
                    [(10, 16), (24, 36)], channels=channels, extra_pool=False, fc_dim=256,
                    mask_convs=2, canonical_level=1, canonical_size=20, mask_pool=7)


def mlperf_tensor_names(model: MaskRCNN) -> list[str]:
    """The names MLPerf's closed maskrcnn rules expect in `weights_initialization` (the heads;
    the backbone starts from ImageNet weights there and is not listed)."""
    names = []
    for i in range(1, len(model.fpn.inner) + 1):
        names += [f"FPN_inner_block{i}", f"FPN_layer_block{i}"]
    names += ["RPNHead_conv", "RPNHead_cls", "RPNHead_bbox", "ROI_BOX_FEATURE_EXTRACTOR_fc6",
              "ROI_BOX_FEATURE_EXTRACTOR_fc7", "ROI_BOX_PREDICTOR_cls", "ROI_BOX_PREDICTOR_bbox"]
    names += [f"ROI_MASK_FEATURE_EXTRACTOR_fcn{i}" for i in range(1, len(model.mask_fcn) + 1)]
    return names + ["ROI_MASK_PREDICTOR_fcn5", "ROI_MASK_PREDICTOR_fcn_logits"]
