"""Recommendation: DLRM on Criteo 1TB click logs (reference) and DLRM-mini on generated click logs."""

SCALES = ("mini", "reference")


def make_workload(scale: str, overrides: dict):
    from mlpace.benchmarks.dlrm.workload import make
    return make(scale, overrides)
