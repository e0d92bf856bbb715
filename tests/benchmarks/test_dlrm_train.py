"""DLRM: the AUC metric by hand, the mini model learning on tiny click logs (and its log
passing the official open-division checker), and the reference config's closed-rule keys."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.dlrm import data as click_data
from mlpace.benchmarks.dlrm.workload import roc_auc
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

# Tiny click logs: big enough for the interactions to show, small enough for a few seconds.
TINY = {"mini_rows_per_day": 15000, "mini_eval_rows": 5000, "batch_size": 256, "base_lr": 4.0,
        "warmup_steps": 20, "decay_start_step": 300, "decay_steps": 300}


def test_auc_equals_the_pair_count_by_hand():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    # positives {0.35, 0.8, 0.9} vs negatives {0.1, 0.4, 0.8}: a pair counts 1 when the
    # positive scores higher, 1/2 on a tie. 0.35: 1 of 3; 0.8: 2 + 1/2; 0.9: 3. -> 6.5 / 9
    assert roc_auc(labels, scores) == pytest.approx(6.5 / 9)
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5     # one class only
    assert roc_auc(np.array([0, 1]), np.array([np.nan, 0.3])) == 0.5  # a diverged model


@pytest.mark.slow
def test_mini_dlrm_learns_and_its_log_passes_the_open_rules(data_root, tmp_path):
    workload = make_workload("dlrm", "mini", TINY)
    log = tmp_path / "dlrm.log"
    outcome = run_once(workload, RunContext(seed=3, data_dir=data_root), log, max_epochs=4)
    aucs = [q for _, _, q in outcome.evals]
    assert len(aucs) == 4
    # Untrained the AUC is ~0.5 (the first evaluation, after one short epoch, ~0.57); seed 3
    # reaches ~0.68 after four.
    assert aucs[-1] > 0.62 and aucs[-1] > aucs[0], aucs
    ok, out = run_compliance_checker(log)
    assert ok, out[-2000:]


def _closed_rule_keys() -> tuple[set[str], list[str]]:
    import mlperf_logging
    path = (Path(mlperf_logging.__file__).parent / "compliance_checker" / "training_1.1.0"
            / "closed_dlrm.yaml")
    rules = yaml.safe_load(path.read_text())
    keys = {r["KEY"]["NAME"] for r in rules if "KEY" in r}
    end = next(r["END"]["CHECK"] for r in rules if "END" in r)
    return keys - {"weights_initialization", "eval_accuracy"}, re.findall(r'"(\w+)"', end)


def test_reference_config_logs_the_closed_rule_keys(tmp_path):
    click_data.generate_mini(tmp_path, train_days=1, rows_per_day=600, eval_rows=200, seed=5)
    # The reference recipe on tiny data in the real layout (days 0 and 1 standing in for
    # day_0..22 and day_23); only the batch size is shrunk to fit 600 lines.
    workload = make_workload("dlrm", "reference", {
        "data_path": str(tmp_path), "train_days": "0", "eval_day": 1, "batch_size": 128})
    workload.prepare_data(tmp_path)
    workload.setup(RunContext(seed=1, data_dir=tmp_path))
    keys, tensors = _closed_rule_keys()
    hyper = workload.hyperparameters()
    assert keys <= set(hyper) | {"global_batch_size"}, keys - set(hyper)
    assert sorted(workload.initialized_tensors()) == sorted(tensors)
    assert hyper["sgd_opt_learning_rate_decay_poly_power"] == 2
    assert workload.eval_samples() == 100                  # MLPerf evaluates on half of the eval day
    assert workload.eval_interval_samples() == 30          # 20 evaluations per epoch of 600 lines
    model = workload.trained_model()
    assert model.embeddings.embedding_dim == 128
    assert [m.out_features for m in model.top_mlp if hasattr(m, "out_features")] == [1024, 1024, 512, 256, 1]
    steps = workload.train_epoch(1)
    assert next(steps) == 128                              # one SGD step of the reference model runs
    assert 0.0 <= workload.evaluate(1) <= 1.0
