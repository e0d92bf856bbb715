"""Config values are checked by type and by meaning before anything runs: a JSON `true` is not
a batch size, and a field's declared bounds (`bounded`) refuse sizes and counts that mean
nothing (image_size=0). Also: every timed run states its scale and quality target in its log."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from mlpace.benchmarks.resnet.workload import CONFIGS as RESNET
from mlpace.cli import main
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides, bounded
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker
from test_harness_run import LinearWorkload, read_log

# Small enough that, were the value let through, the run would end in seconds (and fail the test)
TINY = ["--set", "train_per_class=2", "--set", "val_per_class=2", "--max-epochs", "1", "--runs", "1",
        "--no-store"]


@pytest.mark.parametrize("key", ["batch_size", "image_size", "base_lr", "data_path"])
def test_a_json_true_is_not_a_number_or_a_text(key):
    with pytest.raises(MlpaceError, match=f"config key '{key}' expects .*, got True"):
        apply_overrides(RESNET["mini"], {key: True})


def test_a_true_in_a_config_file_is_refused_in_one_line(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"batch_size": True}))
    code = main(["train", "resnet", "--config", str(config), "--out", str(tmp_path / "out"),
                 "--data-dir", str(tmp_path / "data"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "batch_size" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value", [("image_size", "0"), ("image_size", "100000"),
                                        ("blocks", "1,0,1"), ("widths", "16,0,64"),
                                        ("num_classes", "0"), ("train_per_class", "0"),
                                        ("val_per_class", "0"), ("mini_classes", "0"),
                                        ("mini_classes", "11"), ("decay_epochs", "0")])
def test_resnet_sizes_and_counts_out_of_their_bounds_are_refused(key, value):
    with pytest.raises(MlpaceError, match=f"config key '{key}' must be "):
        apply_overrides(RESNET["mini"], {key: value})


def test_values_within_the_bounds_are_kept():
    config = apply_overrides(RESNET["mini"], {"image_size": "64", "blocks": "2,2,2", "mini_classes": "10"})
    assert (config.image_size, config.blocks, config.mini_classes) == (64, (2, 2, 2), 10)


def test_image_size_zero_fails_train_in_one_line_before_anything_runs(tmp_path, capsys):
    code = main(["train", "resnet", "--set", "image_size=0", "--out", str(tmp_path / "out"),
                 "--data-dir", str(tmp_path / "data"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "image_size" in err and "from 1 to 1024" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


@dataclass(frozen=True)
class AnyBenchmarkConfig:
    """Any benchmark's config declares its bounds the same way."""
    hidden: int = bounded(64, 1)
    crop: float = bounded(0.5, high=1.0)
    sizes: tuple[int, ...] = bounded((8, 16), 2, 32)
    free: int = 3


@pytest.mark.parametrize("overrides, message", [
    ({"hidden": 0}, "'hidden' must be at least 1, not 0"),
    ({"crop": 1.5}, "'crop' must be at most 1, not 1.5"),
    ({"sizes": "8,64"}, "'sizes' must be from 2 to 32, not (8, 64)"),
])
def test_bounds_are_declared_with_the_field_for_any_config(overrides, message):
    with pytest.raises(MlpaceError) as err:
        apply_overrides(AnyBenchmarkConfig(), overrides)
    assert message in str(err.value)
    assert apply_overrides(AnyBenchmarkConfig(), {"hidden": 1, "free": 0}).hidden == 1


@pytest.mark.parametrize("scale, target", [("mini", 0.9), ("reference", 0.9)])
def test_a_timed_run_logs_its_scale_and_quality_target(tmp_path, scale, target):
    log = tmp_path / "result_0.txt"
    run_once(LinearWorkload(scale=scale), RunContext(seed=3), log)
    lines = {line["key"]: line for line in read_log(log)}
    assert lines["mlpace_scale"]["value"] == scale
    stated = lines["mlpace_quality_target"]
    assert stated["value"] == target
    assert stated["metadata"]["metric"] == "accuracy" and stated["metadata"]["direction"] == "max"
    ok, output = run_compliance_checker(log)      # the official checker accepts the extra keys
    assert ok, output


@pytest.mark.parametrize("benchmark, key", [
    ("ssd", "image_size"), ("ssd", "train_images"), ("maskrcnn", "image_size"),
    ("maskrcnn", "val_images"), ("bert", "layers"), ("bert", "heads"), ("dlrm", "embedding_dim"),
    ("unet3d", "patch_size"), ("unet3d", "train_cases")])
def test_other_benchmarks_declare_their_sizes_and_counts_positive(benchmark, key):
    import importlib
    configs = importlib.import_module(f"mlpace.benchmarks.{benchmark}.workload").CONFIGS
    with pytest.raises(MlpaceError, match=f"config key '{key}' must be "):
        apply_overrides(configs["mini"], {key: "0"})
