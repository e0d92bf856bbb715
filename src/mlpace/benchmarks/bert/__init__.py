"""NLP: BERT-large pre-training on Wikipedia (reference) and BERT-mini on Python's documentation."""

SCALES = ("mini", "reference")


def make_workload(scale: str, overrides: dict):
    from mlpace.benchmarks.bert.workload import make
    return make(scale, overrides)
