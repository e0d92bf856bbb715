"""COCO 2017 on disk, a generated mini data set in that same layout, and COCO mAP.

Shared by the two detection benchmarks (ssd, maskrcnn). Layout, as the COCO 2017 download
unpacks it and as both reference implementations read it:

    <root>/train2017/<12-digit image id>.jpg
    <root>/val2017/<12-digit image id>.jpg
    <root>/annotations/instances_train2017.json
    <root>/annotations/instances_val2017.json

The annotation files are read with pycocotools (the library the field uses), boxes are COCO's
[x, y, width, height] in pixels, category ids may have gaps (COCO's run 1..90 for 80 classes)
and are mapped to contiguous labels 1..K (0 is the background of both detectors).

The mini generator draws scenes of several shapes of several classes on textured backgrounds,
with scale variation and partial occlusion; each object's annotation is its *visible* region
(bbox, area and an RLE mask), as COCO's are. Box and mask mAP are pycocotools' COCOeval.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mlpace.benchmarks.images import background, contrasting_colour, shape_points, stack_images
from mlpace.errors import MlpaceError

MINI_VERSION = 1
MINI_CLASSES = ["circle", "square", "triangle", "star", "plus"]
MINI_CATEGORY_IDS = [1, 3, 5, 7, 9]     # gaps on purpose, as in COCO: the loader must map them


# ----------------------------------------------------------------------------- loader
@dataclass
class CocoSplit:
    """One split: the pycocotools index and per-image targets in contiguous labels."""
    coco: object                          # pycocotools.coco.COCO over the annotation file
    image_ids: list[int]
    files: list[Path]
    boxes: list[np.ndarray]               # per image: N x 4 float32, x1 y1 x2 y2 in pixels
    labels: list[np.ndarray]              # per image: N int64 in 1..K
    category_ids: list[int]               # label k (1-based) is category_ids[k - 1]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


def _quiet():
    """pycocotools prints progress to stdout; keep it out of the user's terminal."""
    return contextlib.redirect_stdout(io.StringIO())


def _usable_annotations(coco, image_id: int) -> list[dict]:
    # Crowd regions and degenerate boxes are not training targets (as in both references).
    return [a for a in coco.imgToAnns.get(image_id, [])
            if not a.get("iscrowd", 0) and a["bbox"][2] > 1 and a["bbox"][3] > 1]


def load_split(root: Path, split: str = "train", year: int = 2017) -> CocoSplit:
    """Read `<root>/annotations/instances_<split><year>.json` and list its images."""
    from pycocotools.coco import COCO
    root = Path(root)
    ann_file = root / "annotations" / f"instances_{split}{year}.json"
    image_dir = root / f"{split}{year}"
    if not ann_file.is_file():
        raise MlpaceError(f"COCO annotations not found at {ann_file} "
                          f"(expected <root>/annotations/instances_{split}{year}.json)")
    if not image_dir.is_dir():
        raise MlpaceError(f"COCO images not found at {image_dir}")
    try:
        with _quiet():
            coco = COCO(str(ann_file))
    except (ValueError, KeyError, TypeError, AssertionError) as err:  # pycocotools asserts
        raise MlpaceError(f"{ann_file} is not a COCO instances file: {err}") from None
    category_ids = sorted(coco.cats)
    label_of = {cid: k + 1 for k, cid in enumerate(category_ids)}
    image_ids = sorted(coco.imgs)
    files, boxes, labels = [], [], []
    for image_id in image_ids:
        files.append(image_dir / coco.imgs[image_id]["file_name"])
        anns = _usable_annotations(coco, image_id)
        b = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        boxes.append(b)
        labels.append(np.array([label_of[a["category_id"]] for a in anns], np.int64))
    names = [coco.cats[c]["name"] for c in category_ids]
    return CocoSplit(coco, image_ids, files, boxes, labels, category_ids, names)


def load_images(split: CocoSplit):
    """All images of a small split as one uint8 tensor N x 3 x H x W (they must share a size)."""
    return stack_images(split.files, "the COCO split")


# ----------------------------------------------------------------------------- metric
def detection_result(split: CocoSplit, index: int, box_xyxy, score: float, label: int, **extra) -> dict:
    """One detection of image `index` in COCO results format, from a box x1y1x2y2 in pixels and
    a contiguous label 1..K (`extra`: e.g. "segmentation")."""
    x1, y1, x2, y2 = box_xyxy
    return {"image_id": split.image_ids[index], "category_id": split.category_ids[label - 1],
            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score, **extra}


def coco_map(split: CocoSplit, detections: list[dict], iou_type: str = "bbox") -> float:
    """COCO mAP@[.5:.95] (COCOeval's stats[0]) of `detections` against the split's ground truth.

    A detection is {"image_id", "category_id", "bbox": [x, y, w, h], "score"} (plus
    "segmentation" as RLE for iou_type "segm"), the format of COCO's results files.
    """
    from pycocotools.cocoeval import COCOeval
    if not detections:
        return 0.0
    with _quiet():
        results = split.coco.loadRes(detections)
        evaluator = COCOeval(split.coco, results, iou_type)
        evaluator.params.imgIds = split.image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(0.0, float(evaluator.stats[0]))   # -1 means "no ground truth": report 0


# ----------------------------------------------------------------------------- generator
def _object_alpha(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """Coverage (0..1) of one randomly placed, scaled and rotated shape, drawn at 4x."""
    big = size * 4
    r = rng.uniform(0.08, 0.26) * big                    # scale variation: 10 to 33 px wide at 64
    cx, cy = rng.uniform(r * 0.6, big - r * 0.6), rng.uniform(r * 0.6, big - r * 0.6)
    angle = rng.uniform(-0.4, 0.4) - math.pi / 2
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(shape_points(name, cx, cy, r, angle), fill=255)
    return np.asarray(mask.resize((size, size), Image.BOX), np.float32) / 255


def draw_scene(rng: np.random.Generator, size: int, max_objects: int):
    """One scene: the image and [(class index, visible mask)] of its objects, back to front."""
    img = np.asarray(background(rng, size), np.float32).copy()
    owner = np.full((size, size), -1, np.int64)   # which object each pixel shows
    objects: list[tuple[int, float]] = []         # (class, full area)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(10):
            label = int(rng.integers(len(MINI_CLASSES)))
            alpha = _object_alpha(rng, MINI_CLASSES[label], size)
            covered = alpha >= 0.5
            trial = np.where(covered, len(objects), owner)
            # keep occlusion partial: every earlier object must stay at least half visible
            if all((trial == k).sum() >= 0.5 * area for k, (_, area) in enumerate(objects)):
                break
        else:
            continue
        colour = np.array(contrasting_colour(rng, img.mean()), np.float32)
        img = img * (1 - alpha[..., None]) + colour * alpha[..., None]
        owner = trial
        objects.append((label, float(covered.sum())))
    img += rng.normal(0, rng.uniform(2, 8), img.shape)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return image, [(label, owner == k) for k, (label, _) in enumerate(objects)]


def generate_scenes(root: Path, n_train: int, n_val: int, size: int = 64, max_objects: int = 4,
                    seed: int = 20210602) -> None:
    """Write the mini data set in COCO 2017 layout (deterministic for a given seed)."""
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": cid, "name": name, "supercategory": "shape"}
                  for cid, name in zip(MINI_CATEGORY_IDS, MINI_CLASSES)]
    image_id, ann_id = 0, 0
    for split, count in (("train", n_train), ("val", n_val)):
        folder = root / f"{split}2017"
        folder.mkdir(exist_ok=True)
        images, annotations = [], []
        for _ in range(count):
            image_id += 1
            image, objects = draw_scene(rng, size, max_objects)
            name = f"{image_id:012d}.jpg"
            image.save(folder / name, quality=92)
            images.append({"id": image_id, "file_name": name, "width": size, "height": size})
            for label, visible in objects:
                rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                if w < 2 or h < 2:
                    continue
                ann_id += 1
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({"id": ann_id, "image_id": image_id,
                                    "category_id": MINI_CATEGORY_IDS[label],
                                    "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)),
                                    "iscrowd": 0, "segmentation": rle})
        data = {"info": {"description": "mlpace generated scenes", "version": str(MINI_VERSION)},
                "images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))


def tiny_config(scale: str, root: Path, reference_overrides: dict | None = None) -> dict:
    """`mlpace validate`'s few steps for ssd and maskrcnn: a small generated set at mini scale;
    at reference scale two generated scenes in COCO 2017 layout, read as real data."""
    if scale == "mini":
        return {"train_images": 32, "val_images": 8, "batch_size": 16}
    folder = Path(root) / "coco"
    generate_scenes(folder, 2, 2, size=64, max_objects=3)
    return {"data_path": str(folder), "batch_size": 2, "eval_batch_size": 2, "num_workers": 0,
            **(reference_overrides or {})}
