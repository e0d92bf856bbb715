"""3D U-Net as in the MLPerf reference (image_segmentation/pytorch/model/unet3d.py).

An input block, one strided down-sampling block per level plus a bottleneck, as many
transposed-convolution up-sampling blocks with skip connections, and a 1x1x1 output layer.
Every block is two (conv 3x3x3 -> instance norm -> ReLU). The reference has five levels with
filters (32, 64, 128, 256, 320); the mini model is the same network with fewer, narrower levels.
Parameter names map onto the tensor names MLPerf's closed unet3d rules list
(`mlperf_tensor_names`).
"""

from __future__ import annotations

import torch
from torch import nn

REFERENCE_FILTERS = (32, 64, 128, 256, 320)


class ConvBlock(nn.Sequential):
    """Two (conv 3x3x3 -> instance norm -> ReLU); the first conv may stride."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        for i, (cin, s) in enumerate(((in_ch, stride), (out_ch, 1))):
            block = nn.Sequential()
            block.add_module("conv", nn.Conv3d(cin, out_ch, 3, stride=s, padding=1, bias=False))
            block.add_module("instancenorm", nn.InstanceNorm3d(out_ch, affine=True))
            block.add_module("relu", nn.ReLU(inplace=True))
            self.add_module(f"block_{i}", block)


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.deconv = nn.ConvTranspose3d(in_ch, out_ch, 2, stride=2)
        self.blocks = ConvBlock(2 * out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(torch.cat([self.deconv(x), skip], dim=1))


class UNet3D(nn.Module):
    def __init__(self, in_channels: int = 1, n_classes: int = 3,
                 filters: tuple[int, ...] = REFERENCE_FILTERS):
        super().__init__()
        filters = tuple(filters)
        self.input_block = ConvBlock(in_channels, filters[0])
        # Down-sampling: one block per filter step, then a bottleneck at the last width.
        widths = list(zip(filters[:-1], filters[1:])) + [(filters[-1], filters[-1])]
        self.down = nn.ModuleList(ConvBlock(i, o, stride=2) for i, o in widths)
        self.up = nn.ModuleList(UpBlock(o, i) for i, o in reversed(widths))
        self.output_conv = nn.Conv3d(filters[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_block(x)
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()   # the bottleneck's output is x itself
        for block in self.up:
            x = block(x, skips.pop())
        return self.output_conv(x)


def mlperf_tensor_names(model: UNet3D) -> list[str]:
    """Layer names as MLPerf's closed unet3d rules spell them (one per conv/norm/deconv)."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv3d, nn.ConvTranspose3d, nn.InstanceNorm3d)):
            continue
        parts = name.split(".")
        if parts[0] in ("down", "up"):
            # down.2.block_0.conv -> down2_block_0_conv; up.1.blocks.block_0.conv -> up1_block_0_conv
            parts = [f"{parts[0]}{parts[1]}"] + [p for p in parts[2:] if p != "blocks"]
        elif parts[0] == "input_block":                       # input_block.block_0.conv
            parts = ["input"] + parts[1:]
        names.append("_".join(parts))
    return names
