"""Recommendation workload: configs for both scales and the train/eval functions.

Reference: MLPerf Training v1.0/v1.1 closed DLRM on the Criteo 1TB click logs (train on
day_0 .. day_22, evaluate on the first half of day_23), plain SGD with a linear warm-up, a
constant phase and a polynomial (power 2) decay, binary cross-entropy, one epoch, target ROC
AUC 0.8025. The hyperparameters are those of the published v1.0 closed results (batch 55296,
learning rate 24, warm-up 2750, decay from step 49315 over 27772 steps; NVIDIA and Google
alike, see ../shared/fixtures). Mini: the same recipe on DLRM-mini and generated click logs.

The AUC is scikit-learn's `roc_auc_score`. Parsing the click logs and building the model are
untimed (setup); the data is held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mlpace.benchmarks.dlrm import data as click_data
from mlpace.benchmarks.dlrm.model import DLRM, mlperf_tensor_names
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext, Workload
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class DlrmConfig:
    model: str = "dlrm_mini"             # dlrm_mini | dlrm (names only; the sizes below decide)
    data_path: str = ""                  # folder of day_N files; empty = generated mini data
    train_days: tuple[int, ...] = (0, 1)
    eval_day: int = 2
    eval_fraction: float = 1.0           # MLPerf evaluates on the first half of day_23
    max_ind_range: int = 0               # hash modulo (0 = none); the reference uses 40M
    embedding_dim: int = 16
    bottom_mlp: tuple[int, ...] = (64, 16)
    top_mlp: tuple[int, ...] = (64, 32, 1)
    batch_size: int = 512                # global batch size
    eval_batch_size: int = 16384
    base_lr: float = 3.0                 # 4.0 diverged for 1 seed in 5
    warmup_steps: int = 300
    decay_start_step: int = 3000         # about 7.7 mini epochs of 390 steps
    decay_steps: int = 3000
    poly_power: float = 2.0
    evals_per_epoch: int = 1             # MLPerf evaluates 20 times per epoch (every 0.05)
    mini_rows_per_day: int = 100_000     # mini data set size
    mini_eval_rows: int = 50_000
    threads: int = 0                     # torch CPU threads (0 = torch's default)


CONFIGS = {
    "mini": DlrmConfig(),
    "reference": DlrmConfig(model="dlrm", train_days=tuple(range(23)), eval_day=23,
                            eval_fraction=0.5, max_ind_range=40_000_000, embedding_dim=128,
                            bottom_mlp=(512, 256, 128), top_mlp=(1024, 1024, 512, 256, 1),
                            batch_size=55296, eval_batch_size=65536, base_lr=24.0,
                            warmup_steps=2750, decay_start_step=49315, decay_steps=27772,
                            evals_per_epoch=20),
}


class DlrmWorkload(Workload):
    def prepare_data(self, data_dir: Path) -> None:
        cfg = self.config
        days = max(cfg.train_days) + 1
        if not cfg.data_path and self.scale == "mini" and cfg.eval_day != days:
            raise MlpaceError(f"the generated mini click logs are day_0 .. day_{days - 1} "
                              f"for training and day_{days} for evaluation; set eval_day={days}")
        self.root = self.locate_data(
            data_dir, "Criteo click logs (day_N files)",
            (f"dlrm-mini-{days}x{cfg.mini_rows_per_day}-{cfg.mini_eval_rows}", click_data.MINI_VERSION,
             lambda d: click_data.generate_mini(d, days, cfg.mini_rows_per_day, cfg.mini_eval_rows)),
            "the reference dlrm needs the Criteo 1TB click logs: pass "
            "--set data_path=/path/to/criteo (with day_0 .. day_23)")

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        if ctx.world_size > 1:   # sparse embedding gradients would need their own all-reduce
            raise MlpaceError("dlrm trains in one process; data-parallel dlrm is not implemented "
                              "(drop --nproc-per-node)")
        self.begin_setup(ctx)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        train = click_data.read_days(click_data.day_files(self.root, cfg.train_days), cfg.max_ind_range)
        (eval_path,) = click_data.day_files(self.root, (cfg.eval_day,))
        val = click_data.read_day(eval_path, cfg.max_ind_range, cfg.eval_fraction)
        if len(train) < cfg.batch_size or len(val) == 0:
            raise MlpaceError(f"too few click-log lines in {self.root}: {len(train)} for training "
                              f"(batch size {cfg.batch_size}), {len(val)} for evaluation")
        table_sizes = click_data.encode_categorical(train, val)
        self.train = [torch.from_numpy(a) for a in (train.dense, train.categorical, train.labels)]
        self.val = [torch.from_numpy(a) for a in (val.dense, val.categorical, val.labels)]
        self.model = DLRM(table_sizes, cfg.embedding_dim, click_data.NUM_DENSE,
                          cfg.bottom_mlp, cfg.top_mlp).to(ctx.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.base_lr)
        self.steps_per_epoch = len(train) // cfg.batch_size
        self.step = 0

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: constants.SGD,
            constants.OPT_BASE_LR: cfg.base_lr,
            "sgd_opt_base_learning_rate": cfg.base_lr,
            constants.OPT_LR_WARMUP_STEPS: cfg.warmup_steps,
            "opt_learning_rate_warmup_factor": 0.0,
            "lr_decay_start_steps": cfg.decay_start_step,
            "sgd_opt_learning_rate_decay_steps": cfg.decay_steps,
            "sgd_opt_learning_rate_decay_poly_power": cfg.poly_power,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(self.model)

    def train_samples(self) -> int:
        return len(self.train[2])

    def eval_samples(self) -> int:
        return len(self.val[2])

    def eval_interval_samples(self) -> int:
        if self.config.evals_per_epoch <= 1:
            return 0
        return -(-self.train_samples() // self.config.evals_per_epoch)

    def learning_rate(self, step: int) -> float:
        """MLPerf DLRM: linear warm-up from 0, constant, then polynomial decay to 0."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.base_lr * (step + 1) / cfg.warmup_steps
        if step < cfg.decay_start_step:
            return cfg.base_lr
        progress = min(1.0, (step - cfg.decay_start_step) / max(1, cfg.decay_steps))
        return cfg.base_lr * (1.0 - progress) ** cfg.poly_power

    def train_epoch(self, epoch: int) -> Iterator[int]:
        self.model.train()
        dev, bs = self.ctx.device, self.config.batch_size
        dense, categorical, labels = self.train
        order = torch.randperm(len(labels), generator=self.generator)
        for i in range(self.steps_per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            with self.ctx.autocast():
                logits = self.model(dense[idx].to(dev), categorical[idx].to(dev))
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels[idx].to(dev))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            yield len(idx)

    @torch.no_grad()
    def predict(self, dense: torch.Tensor, categorical: torch.Tensor) -> np.ndarray:
        """Click probabilities, in batches of eval_batch_size."""
        self.model.eval()
        bs, dev, out = self.config.eval_batch_size, self.ctx.device, []
        for i in range(0, len(dense), bs):
            with self.ctx.autocast():
                logits = self.model(dense[i:i + bs].to(dev), categorical[i:i + bs].to(dev))
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).numpy()

    def evaluate(self, epoch: int) -> float:
        dense, categorical, labels = self.val
        return roc_auc(labels.numpy(), self.predict(dense, categorical))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's); 0.5 when only one class is present, or when
    a diverged model scores NaN (it ranks nothing)."""
    from sklearn.metrics import roc_auc_score
    if len(np.unique(labels)) < 2 or not np.isfinite(scores).all():
        return 0.5
    return float(roc_auc_score(labels, scores))


def make(scale: str, overrides: dict) -> DlrmWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return DlrmWorkload(get_spec("dlrm"), scale, config)
