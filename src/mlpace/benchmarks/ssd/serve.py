"""ssd-resnet34 and ssd-mobilenet: object detection on COCO-format data, COCO mAP, 99 % of FP32.

Both are the training benchmark's SSD (`mlpace.benchmarks.ssd`), trained once and cached by
the training harness on its generated COCO-format scenes, and served on their validation
split. They differ in backbone as in MLPerf, heavy versus light: ssd-resnet34 serves SSD-mini
as trained for the ssd benchmark (ResNet basic-block stages 16-32-64); ssd-mobilenet an SSD-mini
trained with the config's `backbone=mobilenet`, a MobileNet-v1 of depthwise-separable blocks
(see `mlpace.benchmarks.ssd.model`). Both have the same heads and 340 default boxes on 8/4/2/1
maps. Reference scale (COCO 2017; SSD-ResNet34 at 1200x1200 and TF's ssd_mobilenet_v1 at
300x300 in MLPerf) is not wired yet; `ssd_mobilenet_v1` builds the latter's network.

A response holds every detection of one image as 7 float32 each, `[qsl_idx, ymin, xmin, ymax,
xmax, score, class]` in [0, 1] coordinates, the layout of MLPerf's reference SSD backends; the
accuracy script turns them into COCO results and runs pycocotools (mAP@[.5:.95]).
"""

from __future__ import annotations

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "ssd"
# Training overrides per variant: the backbone is what tells them apart.
VARIANTS = {"ssd-resnet34": {"backbone": "resnet"}, "ssd-mobilenet": {"backbone": "mobilenet"}}


def _bundle(model):
    import torch

    from mlpace.benchmarks.ssd.model import detect
    from mlpace.inference.backends import ModelBundle
    anchors = model.anchors.cpu()

    def collate(samples):
        return (np.stack([image for _, image in samples]),)

    def postprocess(outputs, samples):
        rows, indices = [], [index for index, _ in samples]
        found = detect(torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1]), anchors)
        for index, (boxes, scores, labels) in zip(indices, found):
            x1, y1, x2, y2 = boxes.unbind(1)
            rows.append(torch.stack([torch.full_like(scores, float(index)), y1, x1, y2, x2, scores,
                                     labels.float()], 1).numpy().astype(np.float32).ravel())
        return rows
    return ModelBundle(model=model, collate=collate, postprocess=postprocess)


def _coco_map(split):
    from mlpace.benchmarks import coco

    def score(outputs: dict[int, np.ndarray]) -> float:
        detections = []
        for index, flat in outputs.items():
            info = split.coco.imgs[split.image_ids[index]]
            for _, ymin, xmin, ymax, xmax, s, label in flat.reshape(-1, 7):
                w, h = info["width"], info["height"]
                detections.append({"image_id": split.image_ids[index],
                                   "category_id": split.category_ids[int(label) - 1],
                                   "bbox": [xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h],
                                   "score": float(s)})
        return coco.coco_map(split, detections, "bbox")
    return score


def build(options: BuildOptions, name: str = "ssd-resnet34") -> InferenceTask:
    """`name`: the variant served, ssd-resnet34 or ssd-mobilenet (see VARIANTS)."""
    from mlpace.benchmarks import coco
    from mlpace.benchmarks.detection import normalize
    from mlpace.benchmarks.ssd.workload import build_model
    from mlpace.inference.task import model_and_data, serve_bundle, served_count

    if options.scale != "mini":
        raise MlpaceError(f"{name} runs at mini scale only in this mlpace (reference COCO is not wired yet)")
    backbone = VARIANTS[name]["backbone"]
    if options.train_overrides.get("backbone", backbone) != backbone:
        raise MlpaceError(f"{name} is the SSD with the {backbone} backbone; drop backbone= from --set")
    workload, cache = model_and_data(options, name, TRAINING_BENCHMARK, "an SSD state_dict",
                                     overrides={**VARIANTS[name], **options.train_overrides})
    split = coco.load_split(workload.root, "val")
    images = normalize(coco.load_images(split)).numpy()
    model = cache.load_or_train(lambda: build_model(workload.config, len(split.category_ids) + 1))

    def load(index):
        return index, images[index]   # the index goes into the response rows, as MLPerf's do

    return serve_bundle(options, cache, _bundle(model), name=name, total=served_count(options, len(split)),
                        load=load, output_dtype="float32", score=_coco_map(split), metric="mAP",
                        max_batch=64)
