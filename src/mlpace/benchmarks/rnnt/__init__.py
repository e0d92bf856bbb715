"""Speech recognition: RNN-T on LibriSpeech (reference) and a mini RNN-T on generated speech-like audio."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (written under `root` for the
    reference scale, in the real format its loader reads): `mlpace validate`'s smoke run."""
    from mlpace.benchmarks.rnnt.data import tiny_config as config
    return config(scale, root)
