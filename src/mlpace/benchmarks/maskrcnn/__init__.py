"""Instance segmentation: Mask R-CNN ResNet-50-FPN on COCO 2017 (reference) and Mask R-CNN-mini
on generated COCO-format scenes with instance masks."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (`mlpace validate`'s smoke run); the
    reference pipeline's resize is shrunk (the code path stays the 800/1333 one)."""
    from mlpace.benchmarks import coco
    return coco.tiny_config(scale, root, {"min_image_size": 96, "max_image_size": 128})
