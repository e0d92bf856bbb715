"""Image classification: ResNet-50 v1.5 on ImageNet (reference) and ResNet-mini on generated shapes."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (written under `root` for the
    reference scale, in the real format its loader reads): `mlpace validate`'s smoke run."""
    from mlpace.benchmarks.resnet.data import tiny_config as config
    return config(scale, root)
