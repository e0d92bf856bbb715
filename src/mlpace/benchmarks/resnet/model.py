"""ResNet v1.5 in plain torch: ResNet-50 (reference) and ResNet-mini (same family, smaller).

v1.5 puts the stride of a down-sampling bottleneck in its 3x3 convolution (v1 had it in the
first 1x1), as MLPerf's reference does. Module names follow MLPerf's tensor names
(`conv0`, `bn0`, `stages.<s>.<u>.conv1`, `...bnsc`, `fc1`) so that `mlperf_tensor_names` maps
parameters to the names the closed rules expect in `weights_initialization`.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, stride_in_1x1: bool = False):
        super().__init__()
        out_ch = width * self.expansion
        # v1 (MSRA, what Mask R-CNN's backbone is) strides in the first 1x1; v1.5 in the 3x3
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_ch, width, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        nn.init.zeros_(self.bn3.weight)  # each block starts as the identity: faster, stabler start
        self.has_shortcut = stride != 1 or in_ch != out_ch
        if self.has_shortcut:
            self.conv1sc = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.bnsc = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.bnsc(self.conv1sc(x)) if self.has_shortcut else x
        return torch.relu(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], widths: tuple[int, ...], num_classes: int | None,
                 imagenet_stem: bool, first_stride: int = 1, stride_in_1x1: bool = False):
        super().__init__()
        stem = widths[0]
        if imagenet_stem:   # 7x7/2 conv + 3x3/2 max-pool for 224x224 inputs
            self.conv0 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
            self.pool0 = nn.MaxPool2d(3, stride=2, padding=1)
        else:               # small images: one 3x3 conv, no pooling
            self.conv0 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
            self.pool0 = nn.Identity()
        self.bn0 = nn.BatchNorm2d(stem)
        stages, in_ch = [], stem
        for s, (n, width) in enumerate(zip(blocks, widths)):
            units = []
            for u in range(n):
                stride = (2 if s > 0 else first_stride) if u == 0 else 1
                units.append(Bottleneck(in_ch, width, stride, stride_in_1x1))
                in_ch = width * Bottleneck.expansion
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        # num_classes None: a backbone without the classifier (Mask R-CNN's)
        self.fc1 = nn.Linear(in_ch, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool0(torch.relu(self.bn0(self.conv0(x))))
        x = self.stages(x)
        return self.fc1(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet50(num_classes: int = 1000) -> ResNet:
    return ResNet((3, 4, 6, 3), (64, 128, 256, 512), num_classes, imagenet_stem=True)


def resnet_mini(num_classes: int = 10, blocks=(1, 1, 1), widths=(16, 32, 64)) -> ResNet:
    # The first stage already halves the resolution (in its 3x3 conv, as v1.5 does): on a CPU,
    # full-resolution bottlenecks cost several times the time for little accuracy.
    return ResNet(tuple(blocks), tuple(widths), num_classes, imagenet_stem=False, first_stride=2)


def mlperf_tensor_names(model: ResNet) -> list[str]:
    """Parameter names as MLPerf's closed resnet rules spell them (MXNet style)."""
    names = []
    for name, _ in model.named_parameters():
        parts = name.split(".")
        suffix = {"weight": "weight", "bias": "bias"}[parts[-1]]
        layer = parts[-2]
        if layer.startswith("bn"):
            suffix = "gamma" if suffix == "weight" else "beta"
        if parts[0] == "stages":
            names.append(f"stage{int(parts[1]) + 1}_unit{int(parts[2]) + 1}_{layer}_{suffix}")
        else:
            names.append(f"{layer}_{suffix}")
    return names
