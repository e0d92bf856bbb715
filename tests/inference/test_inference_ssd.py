"""ssd-resnet34 / ssd-mobilenet at mini scale on tiny generated COCO-format scenes."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.benchmarks.ssd import workload as ssd_workload  # noqa: E402
from mlpace.benchmarks.ssd.model import Backbone, MobileNetV1  # noqa: E402
from mlpace.errors import MlpaceError  # noqa: E402
from mlpace.inference.models import BuildOptions, ssd, ssd_mobilenet, ssd_resnet34  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402
from mlpace.inference.task import score_directly  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"train_images": 48, "val_images": 8, "batch_size": 16}


@pytest.mark.slow
@pytest.mark.parametrize("module", [ssd_resnet34, ssd_mobilenet], ids=["resnet34", "mobilenet"])
def test_detections_in_mlperf_layout_scored_by_cocoeval(module, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    built, real_build = [], ssd_workload.build_model           # record the models built
    monkeypatch.setattr(ssd_workload, "build_model", lambda *a: built.append(real_build(*a)) or built[-1])
    task = module.build(BuildOptions(data_dir=tmp_path, threads=1, train_overrides=TINY, train_epochs=1))
    name = module.__name__.rsplit(".", 1)[1].replace("_", "-")
    assert task.name == task.loadgen_model == name and task.total == 8
    backbone = {"ssd-resnet34": Backbone, "ssd-mobilenet": MobileNetV1}[name]
    assert built and all(isinstance(model.backbone, backbone) for model in built)   # what is served
    rows = task.predict([task.load(3)])[0].reshape(-1, 7)
    assert rows.dtype == np.float32 and (rows[:, 0] == 3).all()          # [qsl_idx, ymin, xmin, ymax, xmax, score, class]
    assert ((rows[:, 1:5] >= 0) & (rows[:, 1:5] <= 1)).all() and (rows[:, 6] >= 1).all()
    assert score_directly(task) == pytest.approx(task.reference_score)
    assert task.reference_score == pytest.approx(task.notes["quality"])  # the training evaluation's mAP
    assert task.score({}) == 0.0
    # an accuracy-mode LoadGen run (quick) scores what the FP32 model scores
    record = run_test(task, "Offline", "accuracy", RunOptions(out=tmp_path / "out", quick=True, system="tiny"))
    assert record["result"] == "PASS" and record["benchmark"] == name
    assert record["accuracy"]["score"] == pytest.approx(task.reference_score)


def test_the_variants_differ_in_backbone_and_are_mini_only(tmp_path):
    assert ssd.VARIANTS["ssd-mobilenet"]["backbone"] == "mobilenet"
    assert ssd.VARIANTS["ssd-resnet34"]["backbone"] == "resnet"
    with pytest.raises(MlpaceError, match="mini scale only"):
        ssd_mobilenet.build(BuildOptions(scale="reference", data_dir=tmp_path))
    with pytest.raises(MlpaceError, match="mobilenet backbone"):
        ssd_mobilenet.build(BuildOptions(data_dir=tmp_path, train_overrides={"backbone": "resnet"}))
