"""Image classification: ResNet-50 v1.5 on ImageNet (reference) and ResNet-mini on generated shapes."""

SCALES = ("mini", "reference")


def make_workload(scale: str, overrides: dict):
    from mlpace.benchmarks.resnet.workload import make
    return make(scale, overrides)
