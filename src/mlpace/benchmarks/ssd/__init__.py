"""Object detection: SSD-ResNet34 on COCO 2017 (reference) and SSD-mini on generated COCO-format
scenes; `backbone=mobilenet` swaps in MobileNet-v1 (the backbone of inference's ssd-mobilenet)."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (`mlpace validate`'s smoke run)."""
    from mlpace.benchmarks import coco
    return coco.tiny_config(scale, root)
