"""Instance segmentation: Mask R-CNN ResNet-50-FPN on COCO 2017 (reference) and Mask R-CNN-mini
on generated COCO-format scenes with instance masks."""

SCALES = ("mini", "reference")


def make_workload(scale: str, overrides: dict):
    from mlpace.benchmarks.maskrcnn.workload import make
    return make(scale, overrides)
