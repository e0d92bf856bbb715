"""Medical image segmentation: 3D U-Net on KiTS19 (reference) and a mini 3D U-Net on generated CT-like volumes."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (written under `root` for the
    reference scale, in the real format its loader reads): `mlpace validate`'s smoke run."""
    from mlpace.benchmarks.unet3d.data import tiny_config as config
    return config(scale, root)
