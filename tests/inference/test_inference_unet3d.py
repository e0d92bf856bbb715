"""3d-unet at mini scale on tiny generated KiTS19-layout volumes: sliding-window SUT and DICE."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.unet3d import serve as unet3d  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402

pytestmark = pytest.mark.timeout(240)

TINY = {"train_cases": 3, "eval_cases": 2, "volume_size": 32}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    torch.set_num_threads(1)
    return unet3d.build(BuildOptions(data_dir=tmp_path_factory.mktemp("kits"), threads=1,
                                     train_overrides=TINY, train_epochs=1))


def test_predictions_are_voxel_labels_scored_by_dice(task):
    assert task.total == 2 and task.targets == (0.99, 0.999)
    assert task.reference_score == pytest.approx(task.notes["quality"], abs=1e-4)   # the training evaluation's DICE
    out = task.predict([task.load(0)])[0]
    assert out.dtype == np.uint8 and out.size == task.load(0).size and set(np.unique(out)) <= {0, 1, 2}
    assert task.score({0: out}) == pytest.approx(task.score({0: task.predict([task.load(0)])[0]}))
    assert task.score({0: np.zeros(3, np.uint8)}) == 0.0       # a malformed answer scores 0


@pytest.mark.slow
def test_accuracy_run_at_99_9_percent_in_the_official_layout(task, tmp_path):
    record = run_test(task, "SingleStream", "accuracy",
                      RunOptions(out=tmp_path, quick=True, system="tiny", target_fraction=0.999))
    assert record["result"] == "PASS" and record["benchmark"] == "3d-unet-99.9"
    text = (tmp_path / "open/mlpace/results/tiny/3d-unet-99.9/SingleStream/accuracy/accuracy.txt").read_text()
    assert text.startswith("Accuracy: mean = ")                 # the KiTS19 script's headline
