"""ImageNet's on-disk layout, and a generated mini data set in that same layout.

Layout (what the real ImageNet 2012 preprocessing scripts produce, and what this reads):

    <root>/train/<class>/<image>.JPEG
    <root>/val/<class>/<image>.JPEG

Classes are the sorted folder names, so labels agree between train and val. The one loader,
`list_images`, serves both scales: the mini data set is small enough to decode into memory
once (`load_into_memory`); the reference data set is decoded on the fly (`ImageFolder`).

The mini generator draws 10 shape classes (the class is the shape) with random colour, size,
position, rotation, textured backgrounds, distractor strokes and noise, so that telling them
apart takes learning: colour and position carry no information.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mlpace.benchmarks.images import background, contrasting_colour, read_image, shape_points, stack_images
from mlpace.errors import MlpaceError

IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png"}
MINI_CLASSES = ["circle", "crescent", "cross", "hbar", "plus", "ring", "square", "star",
                "triangle", "vbar"]
MINI_VERSION = 4
MINI_SIZE = 32


# ----------------------------------------------------------------------------- tiny real-format data
def write_imagenet_like(root: Path, classes=("n01440764", "n01443537"), per_class=3, size=(80, 60)):
    """A tiny tree in real ImageNet layout: synset folders of JPEGs of varied sizes (noise), for
    tests and `mlpace validate` of the reference scale."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 255, (size[1] + i, size[0] + 2 * i, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{c}_{i}.JPEG")
    return root


# ----------------------------------------------------------------------------- loader
def list_images(root: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """[(path, label)] of one split and the class names, from the class-folder layout."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise MlpaceError(f"image data set at {root} has no '{split}' folder "
                          f"(expected {split}/<class>/<image>.JPEG)")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise MlpaceError(f"{split_dir} holds no class folders")
    items = []
    for label, cls in enumerate(classes):
        for f in sorted((split_dir / cls).iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((f, label))
    if not items:
        raise MlpaceError(f"{split_dir} holds no images")
    return items, classes


def load_into_memory(root: Path, split: str):
    """All images of a small split as a uint8 tensor N×3×H×W and int64 labels."""
    import torch
    items, classes = list_images(root, split)
    x = stack_images([p for p, _ in items], f"{root}/{split}")
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    return x, y, classes


class ImageFolder:
    """Map-style dataset over the class-folder layout with ImageNet's standard transforms
    (random-resized crop + flip for training, resize 256 + centre crop 224 for evaluation)."""

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

    def __init__(self, root: Path, split: str, train: bool, size: int = 224, seed: int = 0):
        self.items, self.classes = list_images(root, split)
        self.train, self.size = train, size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def _random_resized_crop(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        for _ in range(10):
            area = w * h * self.rng.uniform(0.08, 1.0)
            ratio = math.exp(self.rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = self.rng.integers(0, w - cw + 1), self.rng.integers(0, h - ch + 1)
                return img.resize((self.size, self.size), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        return self._center(img)

    def _center(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = (self.size * 256 / 224) / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
        w, h = img.size
        x0, y0 = (w - self.size) // 2, (h - self.size) // 2
        return img.crop((x0, y0, x0 + self.size, y0 + self.size))

    def __getitem__(self, i: int):
        import torch
        path, label = self.items[i]
        img = read_image(path)
        if self.train:
            img = self._random_resized_crop(img)
            if self.rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            img = self._center(img)
        arr = (np.asarray(img, dtype=np.float32) - self.MEAN) / self.STD
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()), label


# ----------------------------------------------------------------------------- generator
def draw_mini_image(rng: np.random.Generator, label: int, size: int = MINI_SIZE) -> Image.Image:
    """One image of class `label`, drawn at 4x and downsampled (anti-aliased edges)."""
    name = MINI_CLASSES[label]
    big = size * 4
    img = background(rng, size).resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    fg = contrasting_colour(rng, np.asarray(img, dtype=np.float32).mean())
    r = rng.uniform(0.26, 0.44) * big
    cx, cy = rng.uniform(r, big - r), rng.uniform(r, big - r)
    angle = rng.uniform(-0.35, 0.35) - math.pi / 2
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif name == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fg, width=int(r * 0.35))
    elif name == "crescent":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
        off = 0.45 * r
        bg = tuple(int(v) for v in np.asarray(img.getpixel((int(cx), int(cy)))) * 0 + rng.integers(0, 256, 3))
        d = angle + math.pi / 2
        draw.ellipse((cx + off * math.cos(d) - r * 0.85, cy + off * math.sin(d) - r * 0.85,
                      cx + off * math.cos(d) + r * 0.85, cy + off * math.sin(d) + r * 0.85), fill=bg)
    else:
        draw.polygon(shape_points(name, cx, cy, r, angle), fill=fg)
    for _ in range(int(rng.integers(0, 2))):  # distractor strokes
        pts = [tuple(rng.uniform(0, big, 2)) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(2, 6)))
    img = img.resize((size, size), Image.LANCZOS)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, rng.uniform(2, 12), (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def generate_mini(root: Path, train_per_class: int = 600, val_per_class: int = 100,
                  num_classes: int = len(MINI_CLASSES), seed: int = 20210601) -> None:
    """Write the mini data set in ImageNet layout (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for label, cls in enumerate(MINI_CLASSES[:num_classes]):
            folder = Path(root) / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                draw_mini_image(rng, label).save(folder / f"{cls}_{split}_{i:05d}.JPEG", quality=92)


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps: a small mini data set, or a tiny ImageNet-layout tree."""
    if scale == "mini":
        return {"train_per_class": 8, "val_per_class": 4, "batch_size": 16}
    tree = write_imagenet_like(Path(root) / "imagenet", per_class=4)
    return {"data_path": str(tree), "batch_size": 4, "eval_batch_size": 4, "num_workers": 0}
