"""NLP: BERT-large pre-training on Wikipedia (reference) and BERT-mini on Python's documentation."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (`mlpace validate`'s smoke run)."""
    from mlpace.benchmarks.bert.data import tiny_config as config
    return config(scale, root)
