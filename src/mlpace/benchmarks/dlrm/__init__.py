"""Recommendation: DLRM on Criteo 1TB click logs (reference) and DLRM-mini on generated click logs."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (written under `root` for the
    reference scale, in the real format its loader reads): `mlpace validate`'s smoke run."""
    from mlpace.benchmarks.dlrm.data import tiny_config as config
    return config(scale, root)
