"""Image files and generated pictures shared by the image benchmarks (resnet, ssd, maskrcnn).

`read_image` is the one decoder of an image file (RGB, a bad file is a one-line error);
`stack_images` decodes a small split into one tensor for the in-memory mini loaders. The
drawing helpers are what the mini generators of ImageNet-layout shapes (`resnet.data`) and
COCO-layout scenes (`coco`) have in common: shapes, backgrounds and colours that carry no
class information.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from mlpace.errors import MlpaceError


# ----------------------------------------------------------------------------- files
def read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise MlpaceError(f"cannot decode image {path}: {err}") from None


def stack_images(paths: list[Path], where: str):
    """The images at `paths` as one uint8 tensor N x 3 x H x W; `where` names them in the error
    when they differ in size (an in-memory loader needs one size)."""
    import torch
    arrays = [np.asarray(read_image(p)) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise MlpaceError(f"{where}: images differ in size {sorted(shapes)[:3]}; "
                          "the in-memory loader needs one size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- drawing
def shape_points(name: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def polygon(n, radii):
        pts = []
        for k in range(n * len(radii)):
            a = angle + 2 * math.pi * k / (n * len(radii))
            rr = r * radii[k % len(radii)]
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    if name == "triangle":
        return polygon(3, [1.0])
    if name == "square":
        return polygon(4, [1.0])
    if name in ("hbar", "vbar"):   # a bar 2.8 times as long as it is wide
        a0 = angle + (math.pi / 2 if name == "hbar" else 0.0)  # angle is about -pi/2 (upright)
        c, s = math.cos(a0), math.sin(a0)
        return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c))
                for x, y in [(1, 0.36), (-1, 0.36), (-1, -0.36), (1, -0.36)]]
    if name == "star":
        return polygon(5, [1.0, 0.42])
    if name in ("plus", "cross"):
        a0 = angle + (math.pi / 4 if name == "cross" else 0.0)
        w = 0.33
        base = [(1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1),
                (w, -1), (w, -w), (1, -w)]
        c, s = math.cos(a0), math.sin(a0)
        return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]
    raise ValueError(name)


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Smooth random colour field plus a random texture: no class information."""
    coarse = rng.uniform(0, 255, size=(3, 3, 3)).astype(np.uint8)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    kind = rng.integers(0, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    arr = 128 + 0.6 * (arr - 128)   # muted, so that a shape stands out as it would in a photo
    if kind == 1:   # stripes at a random angle
        a, f = rng.uniform(0, math.pi), rng.uniform(0.3, 1.0)
        arr += 18 * np.sin(f * (xx * math.cos(a) + yy * math.sin(a)))[..., None]
    elif kind == 2:  # speckle
        arr += rng.normal(0, 14, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def contrasting_colour(rng: np.random.Generator, background_level: float) -> tuple[int, int, int]:
    """A random colour whose brightness differs clearly from the background's."""
    while True:
        colour = rng.integers(0, 256, size=3)
        if abs(colour.mean() - background_level) > 50:
            return tuple(int(v) for v in colour)
