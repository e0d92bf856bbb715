"""BERT: the masked-LM accuracy and LAMB by hand, BERT-mini learning on tiny shards (and its
log passing the official open-division checker), and the reference config's closed-rule keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.bert import data as bert_data
from mlpace.benchmarks.bert.model import Lamb
from mlpace.benchmarks.bert.workload import masked_lm_hits, mlperf_eval_interval
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

TINY_MODEL = {"hidden": 32, "intermediate": 64, "heads": 2, "layers": 1, "max_seq_len": 48,
              "batch_size": 32, "base_lr": 0.02, "warmup_steps": 20, "train_steps": 400}


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert-shards")
    bert_data.generate_mini(root, vocab_size=512, seq_len=48, max_pred=8, dupe_factor=2, train_shards=2)
    return root


def test_masked_lm_accuracy_counts_only_used_slots():
    logits = torch.zeros(1, 4, 6)
    logits[0, 0, 3] = logits[0, 1, 2] = logits[0, 2, 5] = logits[0, 3, 1] = 1.0
    labels = torch.tensor([[3, 4, 5, 0]])          # slot 3 is padding (label 0): not counted
    assert masked_lm_hits(logits, labels) == (2, 3)


def test_lamb_first_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))             # ||w|| = 5
    w.grad = torch.tensor([0.5, -2.0])
    Lamb([w], lr=0.1, eps=0.0, weight_decay=0.0).step()
    # Step 1 with bias correction: m^ = g, v^ = g^2, so the update is sign(g) = [1, -1];
    # trust ratio ||w|| / ||update|| = 5 / sqrt(2).
    trust = 5 / 2 ** 0.5
    assert w.detach().tolist() == pytest.approx([3.0 - 0.1 * trust, 4.0 + 0.1 * trust])


@pytest.mark.slow
def test_mini_bert_learns_and_its_log_passes_the_open_rules(tiny_shards, tmp_path):
    workload = make_workload("bert", "mini", {"data_path": str(tiny_shards), **TINY_MODEL})
    log = tmp_path / "bert.log"
    outcome = run_once(workload, RunContext(seed=2, data_dir=tmp_path), log, max_epochs=2)
    accuracy = [q for _, _, q in outcome.evals]
    # Untrained the accuracy is ~0 (1 in 512); frequent words and punctuation come first.
    assert accuracy[-1] > 0.10, accuracy
    ok, out = run_compliance_checker(log)
    assert ok, out[-2000:]


def test_reference_config_logs_the_closed_rule_keys(tiny_shards):
    import mlperf_logging
    rules = yaml.safe_load((Path(mlperf_logging.__file__).parent / "compliance_checker"
                            / "training_1.1.0" / "closed_bert.yaml").read_text())
    keys = {r["KEY"]["NAME"] for r in rules if "KEY" in r} - {"weights_initialization", "eval_accuracy"}
    tensors = re.findall(r'"([\w/]+)"', next(r["END"]["CHECK"] for r in rules if "END" in r))
    # The reference recipe with BERT-large's 24 layers, but narrow, so that it builds in a test.
    workload = make_workload("bert", "reference", {
        "data_path": str(tiny_shards), "vocab_size": 512, "hidden": 32, "intermediate": 64,
        "heads": 2, "batch_size": 16})
    workload.prepare_data(tiny_shards)
    workload.setup(RunContext(seed=1, data_dir=tiny_shards))
    hyper = workload.hyperparameters()
    assert keys <= set(hyper), keys - set(hyper)
    assert sorted(workload.initialized_tensors()) == sorted(tensors)
    assert hyper["opt_base_learning_rate"] == 3.5e-4 and hyper["global_batch_size"] == 16
    assert next(workload.train_epoch(1)) == 16
    # MLPerf's cadence: 0.05 * (230.23 * 16 + 3e6) rounded down to 25,000s; 4096 -> 175,000
    assert workload.eval_interval_samples() == 150_000 and mlperf_eval_interval(4096) == 175_000
