"""The registry's `untrained_quality` (shown by `mlpace list` and the README) is measured, not
typed: each mini benchmark's untrained model, evaluated on its mini evaluation data exactly as a
run's first evaluation would be, scores within TOLERANCE of the registry's value.

Measured on seeds 0-2 (one thread): resnet 0.099-0.100, dlrm 0.478-0.501, bert 0.0004-0.0019,
minigo 0.075-0.125, rnnt 1.0, unet3d 0.005-0.027, ssd 0.00003-0.00007, maskrcnn BBOX and SEGM
below 0.0001. Slow: it generates every mini data set (about 75 s the first time) and runs eight
full evaluations (about 85 s on one thread).
"""

from __future__ import annotations

import pytest

from mlpace.benchmarks import make_workload
from mlpace.harness.workload import RunContext
from mlpace.rules.benchmarks import BENCHMARKS

TOLERANCE = 0.03     # absolute, per metric: wider than the seed-to-seed spread above


def as_dict(quality) -> dict[str, float]:
    return dict(quality) if isinstance(quality, dict) else {"quality": float(quality)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_registry_untrained_quality_is_what_an_untrained_mini_model_scores(name, data_root):
    typed = BENCHMARKS[name].mini.untrained_quality
    assert typed is not None, f"{name}: the registry gives no untrained_quality"
    workload = make_workload(name, "mini", {})
    workload.prepare_data(data_root)
    workload.setup(RunContext(seed=0, data_dir=data_root))
    measured = as_dict(workload.evaluate(0))
    assert measured.keys() == as_dict(typed).keys()
    for metric, value in as_dict(typed).items():
        assert abs(measured[metric] - value) <= TOLERANCE, (name, metric, measured[metric], value)
