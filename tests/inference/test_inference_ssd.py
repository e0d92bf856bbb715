"""ssd-resnet34 / ssd-mobilenet at mini scale on tiny generated COCO-format scenes."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.errors import MlpaceError  # noqa: E402
from mlpace.inference.models import BuildOptions, ssd, ssd_mobilenet, ssd_resnet34  # noqa: E402
from mlpace.inference.task import score_directly  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"train_images": 48, "val_images": 8, "batch_size": 16}


@pytest.mark.slow
def test_detections_in_mlperf_layout_scored_by_cocoeval(tmp_path):
    torch.set_num_threads(1)
    task = ssd_resnet34.build(BuildOptions(data_dir=tmp_path, threads=1, train_overrides=TINY, train_epochs=1))
    assert task.name == task.loadgen_model == "ssd-resnet34" and task.total == 8
    rows = task.predict([task.load(3)])[0].reshape(-1, 7)
    assert rows.dtype == np.float32 and (rows[:, 0] == 3).all()          # [qsl_idx, ymin, xmin, ymax, xmax, score, class]
    assert ((rows[:, 1:5] >= 0) & (rows[:, 1:5] <= 1)).all() and (rows[:, 6] >= 1).all()
    assert score_directly(task) == pytest.approx(task.reference_score)
    assert task.reference_score == pytest.approx(task.notes["quality"])  # the training evaluation's mAP
    assert task.score({}) == 0.0


def test_the_variants_differ_in_backbone_and_are_mini_only(tmp_path):
    assert ssd.VARIANTS["ssd-mobilenet"]["widths"] != ssd.VARIANTS["ssd-resnet34"].get("widths", (16, 32, 64))
    with pytest.raises(MlpaceError, match="mini scale only"):
        ssd_mobilenet.build(BuildOptions(scale="reference", data_dir=tmp_path))
