"""Image classification: the ImageNet-layout loader, the generator, the models, learning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.images import read_image
from mlpace.benchmarks.resnet import data as image_data
from mlpace.benchmarks.resnet.data import write_imagenet_like
from mlpace.benchmarks.resnet.model import mlperf_tensor_names, resnet50, resnet_mini
from mlpace.errors import MlpaceError
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

CLOSED_RULES = Path(__import__("mlperf_logging").__file__).parent / "compliance_checker" / "training_1.1.0"


def test_generator_writes_imagenet_layout_and_is_deterministic(tmp_path):
    image_data.generate_mini(tmp_path / "a", train_per_class=2, val_per_class=1)
    image_data.generate_mini(tmp_path / "b", train_per_class=2, val_per_class=1)
    items, classes = image_data.list_images(tmp_path / "a", "train")
    assert classes == sorted(image_data.MINI_CLASSES) and len(items) == 20
    assert all(p.suffix == ".JPEG" and p.parent.name == classes[label] for p, label in items)
    for (pa, _), (pb, _) in zip(items, image_data.list_images(tmp_path / "b", "train")[0]):
        assert pa.read_bytes() == pb.read_bytes()
    x, y, _ = image_data.load_into_memory(tmp_path / "a", "val")
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.uint8 and y.tolist() == list(range(10))


def test_reference_loader_reads_real_layout(tmp_path):
    root = write_imagenet_like(tmp_path / "imagenet")
    train = image_data.ImageFolder(root, "train", train=True, size=224)
    val = image_data.ImageFolder(root, "val", train=False, size=224)
    x, label = train[4]
    assert x.shape == (3, 224, 224) and label == 1 and len(train) == 6
    assert val[0][0].shape == (3, 224, 224)
    assert abs(float(val[0][0].mean())) < 1.0  # normalised


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(MlpaceError, match="no 'train' folder"):
        image_data.list_images(tmp_path, "train")
    (tmp_path / "train" / "cls").mkdir(parents=True)
    with pytest.raises(MlpaceError, match="holds no images"):
        image_data.list_images(tmp_path, "train")
    (tmp_path / "train" / "cls" / "bad.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(MlpaceError, match="cannot decode"):
        read_image(tmp_path / "train" / "cls" / "bad.JPEG")


def test_resnet50_is_v1_5_and_names_match_closed_rules():
    model = resnet50()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # ResNet-50's known size
    block = model.stages[1][0]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)  # v1.5: stride in the 3x3
    expected = re.findall(r'"(\w+)",', (CLOSED_RULES / "closed_resnet.yaml").read_text())
    assert sorted(mlperf_tensor_names(model)) == sorted(expected)


def test_mini_model_learns_on_tiny_data(data_root):
    """Three of the shape classes (circle, crescent, cross): chance is 1/3; learning must show."""
    w = make_workload("resnet", "mini", {"mini_classes": 3, "train_per_class": 200, "val_per_class": 40,
                                        "batch_size": 32, "base_lr": 0.1, "warmup_epochs": 0.5, "decay_epochs": 6})
    w.prepare_data(data_root)
    w.setup(RunContext(seed=0))
    before = w.evaluate(0)
    for epoch in range(1, 7):
        for _ in w.train_epoch(epoch):
            pass
    after = w.evaluate(6)
    assert before < 0.4 and after > 0.45, (before, after)   # seed 0 gives 0.30 -> 0.51


@pytest.mark.slow
def test_mini_run_reaches_target(data_root, tmp_path):
    """The real thing: the default mini config trains to 85 % top-1 within its epoch budget."""
    torch.set_num_threads(2)
    w = make_workload("resnet", "mini", {})
    # The wall-clock budget is lifted: this checks convergence, which a loaded machine must not fail.
    outcome = run_once(w, RunContext(seed=2, data_dir=data_root), tmp_path / "result_0.txt",
                       time_budget_s=7200)
    assert outcome.converged, outcome.evals
    assert outcome.evals[0][2] < 0.5  # the first epoch is far from the target: learning, not luck


@pytest.mark.slow
def test_mini_log_passes_open_rules(data_root, tmp_path):
    w = make_workload("resnet", "mini", {"train_per_class": 30, "val_per_class": 10, "batch_size": 32})
    log = tmp_path / "result_0.txt"
    outcome = run_once(w, RunContext(seed=1, data_dir=data_root), log, max_epochs=2)
    assert outcome.epochs == 2
    ok, output = run_compliance_checker(log)
    assert ok, output


@pytest.mark.slow
def test_reference_config_logs_closed_keys(tmp_path):
    """A few steps of the real recipe on tiny ImageNet-layout data, logged as a closed run.

    The official checker's verdict on such a log: every closed-rule key is present and
    well-formed (weights_initialization names, sgd_* keys, gradient_accumulation_steps); the
    one complaint it must still make is the quality target (75.90 % is not reached in
    two steps on noise), which is the point of the target.
    """
    from mlpace.harness.timed_run import Submitter
    root = write_imagenet_like(tmp_path / "imagenet", per_class=4)
    w = make_workload("resnet", "reference", {"data_path": str(root), "batch_size": 4,
                                             "eval_batch_size": 4, "num_workers": 0})
    log = tmp_path / "result_0.txt"
    run_once(w, RunContext(seed=1, data_dir=tmp_path), log, Submitter(division="closed"), max_epochs=1)
    lines = [json.loads(x.split(" ", 1)[1]) for x in log.read_text().splitlines() if x.startswith(":::MLLOG")]
    keys = {line["key"] for line in lines}
    for key in ("global_batch_size", "opt_name", "sgd_opt_base_learning_rate", "sgd_opt_end_learning_rate",
                "sgd_opt_learning_rate_decay_poly_power", "sgd_opt_learning_rate_decay_steps",
                "sgd_opt_weight_decay", "sgd_opt_momentum", "model_bn_span",
                "opt_learning_rate_warmup_epochs", "gradient_accumulation_steps"):
        assert key in keys, key
    ok, output = run_compliance_checker(log)
    assert not ok
    failures = [line for line in output.splitlines() if "ERROR" in line or "FAIL" in line or "failed" in line.lower()]
    assert any("0.7590" in line or "ATLEAST_ONE_CHECK" in line or "eval_accuracy" in line for line in failures), output
    assert "weights_initialization" not in " ".join(failures) and "sgd_opt" not in " ".join(failures), output
