"""NLP workload: configs for both scales and the train/eval functions.

Reference: MLPerf Training v1.0/v1.1 closed BERT-large pre-training, phase 2 (sequence length
512, 76 predictions per sequence), LAMB, polynomial (power 1) decay, target masked-LM accuracy
0.720 on the 10,000-example evaluation set. The hyperparameters are those of NVIDIA's published
v1.0 closed result on 8 A100s (batch 448, learning rate 3.5e-4, 7100 steps, no warm-up; see
../shared/fixtures) with the reference's LAMB weight decay 0.01. MLPerf starts phase 2 from a
phase-1 checkpoint; `init_checkpoint` loads one (a torch state dict of this model).
Mini: BERT-mini from scratch, the same loss, optimizer and schedule, on the mini shards.

Masked-LM accuracy is the share of masked positions (masked_lm_ids != 0) whose arg-max
prediction is the original token, as in MLPerf's reference. Reading shards and building the
model are untimed (setup); the shards are held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from mlpace.benchmarks.bert import data as bert_data
from mlpace.benchmarks.bert.model import BertForPreTraining, Lamb, mlperf_tensor_names
from mlpace.errors import MlpaceError
from mlpace.harness import distributed
from mlpace.harness.config import apply_overrides
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext, Workload, weight_decay_groups
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class BertConfig:
    model: str = "bert_mini"             # bert_mini | bert_large (names only; sizes decide)
    data_path: str = ""                  # folder with training/ and eval/ shards; empty = mini
    init_checkpoint: str = ""            # torch state dict to start from (MLPerf phase 2)
    vocab_size: int = 0                  # 0 = the lines of data_path/vocab.txt
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 256
    max_seq_len: int = 64
    batch_size: int = 32                 # global batch size
    eval_batch_size: int = 256
    base_lr: float = 0.01
    warmup_steps: int = 100
    train_steps: int = 3000              # the learning rate reaches 0 here (~4.4 mini epochs)
    poly_power: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-6
    weight_decay: float = 0.01
    eval_interval_samples: int = 0       # 0: once per epoch; -1: MLPerf's rule (mlperf_eval_interval)
    mini_vocab_size: int = 2048          # mini data set: WordPiece vocabulary size
    mini_max_predictions: int = 10       # masked positions per sequence
    mini_dupe_factor: int = 10           # differently masked copies of the training text
    threads: int = 0                     # torch CPU threads (0 = torch's default)


def mlperf_eval_interval(global_batch_size: int) -> int:
    """MLPerf's BERT evaluation cadence in training samples (training rules v1.0):
    FLOOR(0.05 * (230.23 * global_batch_size + 3,000,000), 25,000)."""
    return int(0.05 * (230.23 * global_batch_size + 3_000_000) // 25_000) * 25_000


CONFIGS = {
    "mini": BertConfig(),
    "reference": BertConfig(model="bert_large", vocab_size=30522, hidden=1024, layers=24,
                            heads=16, intermediate=4096, max_seq_len=512, batch_size=448,
                            eval_batch_size=64, base_lr=3.5e-4, warmup_steps=0,
                            train_steps=7100, poly_power=1.0, weight_decay=0.01,
                            eval_interval_samples=-1),
}


class BertWorkload(Workload):
    supports_distributed = True      # uses the hooks of mlpace.harness.distributed

    def prepare_data(self, data_dir: Path) -> None:
        cfg = self.config
        name = (f"{bert_data.MINI_NAME}-{cfg.mini_vocab_size}-{cfg.max_seq_len}-"
                f"{cfg.mini_max_predictions}-{cfg.mini_dupe_factor}")
        self.root = self.locate_data(
            data_dir, "BERT HDF5 shards (training/ and eval/)",
            (name, bert_data.MINI_VERSION, lambda d: bert_data.generate_mini(
                d, cfg.mini_vocab_size, cfg.max_seq_len, cfg.mini_max_predictions, cfg.mini_dupe_factor)),
            "the reference bert needs MLPerf's Wikipedia HDF5 shards: pass "
            "--set data_path=/path/to/bert_data (with training/ and eval/)")

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        self.begin_setup(ctx)
        self.generator = torch.Generator().manual_seed(ctx.seed)  # the same shuffle on every rank
        self.local_batch = distributed.local_batch(cfg.batch_size, ctx)
        train = bert_data.read_shards(bert_data.shard_paths(self.root / "training"))
        val = bert_data.read_shards(bert_data.shard_paths(self.root / "eval"))
        if train.input_ids.shape[1] > cfg.max_seq_len:
            raise MlpaceError(f"the shards hold sequences of {train.input_ids.shape[1]} tokens, "
                              f"more than max_seq_len={cfg.max_seq_len}")
        if len(train) < cfg.batch_size:
            raise MlpaceError(f"{len(train)} training examples is fewer than one batch ({cfg.batch_size})")
        vocab = cfg.vocab_size or len(bert_data.read_vocab(self.root / "vocab.txt"))
        self.train = {k: torch.from_numpy(getattr(train, k)).long() for k in bert_data.FIELDS}
        self.val = {k: torch.from_numpy(getattr(val, k)).long() for k in bert_data.FIELDS}
        self.model = BertForPreTraining(vocab, cfg.hidden, cfg.layers, cfg.heads, cfg.intermediate,
                                        cfg.max_seq_len)
        if cfg.init_checkpoint:
            self._load_checkpoint(Path(cfg.init_checkpoint))
        self.model = distributed.wrap_model(self.model.to(ctx.device), ctx)
        self.optimizer = Lamb(weight_decay_groups(self.model, cfg.weight_decay),
                              lr=cfg.base_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.epsilon,
                              weight_decay=cfg.weight_decay)
        self.steps_per_epoch = len(train) // cfg.batch_size
        self.step = 0

    def _load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except (OSError, RuntimeError, KeyError) as err:
            raise MlpaceError(f"cannot load init_checkpoint {path}: {str(err).splitlines()[0]}") from None

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: constants.LAMB,
            "max_predictions_per_seq": int(self.train["masked_lm_ids"].shape[1]),
            constants.OPT_BASE_LR: cfg.base_lr,
            "opt_epsilon": cfg.epsilon,
            "opt_learning_rate_training_steps": cfg.train_steps,
            constants.OPT_LR_WARMUP_STEPS: cfg.warmup_steps,
            "num_warmup_steps": cfg.warmup_steps,
            "start_warmup_step": 0,
            "opt_lamb_beta_1": cfg.beta1,
            "opt_lamb_beta_2": cfg.beta2,
            "opt_lamb_weight_decay_rate": cfg.weight_decay,
            "opt_lamb_learning_rate_decay_poly_power": cfg.poly_power,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(distributed.unwrap(self.model))

    def train_samples(self) -> int:
        return len(self.train["input_ids"])

    def eval_samples(self) -> int:
        return len(self.val["input_ids"])

    def eval_interval_samples(self) -> int:
        cfg = self.config
        return mlperf_eval_interval(cfg.batch_size) if cfg.eval_interval_samples < 0 else cfg.eval_interval_samples

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then polynomial decay to 0 at train_steps (MLPerf BERT)."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.base_lr * (step + 1) / cfg.warmup_steps
        progress = min(1.0, step / max(1, cfg.train_steps))
        return cfg.base_lr * (1.0 - progress) ** cfg.poly_power

    def _forward(self, batch: dict[str, torch.Tensor], model=None):
        dev, model = self.ctx.device, model or self.model
        with self.ctx.autocast():
            mlm, nsp = model(batch["input_ids"].to(dev), batch["input_mask"].to(dev),
                                  batch["segment_ids"].to(dev), batch["masked_lm_positions"].to(dev))
        return mlm.float(), nsp.float()

    def train_epoch(self, epoch: int) -> Iterator[int]:
        self.model.train()
        bs, dev = self.config.batch_size, self.ctx.device
        order = torch.randperm(len(self.train["input_ids"]), generator=self.generator)
        for i in range(self.steps_per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            idx = idx[distributed.shard(len(idx), self.ctx)]   # this rank's part of the batch
            batch = {k: v[idx] for k, v in self.train.items()}
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            mlm, nsp = self._forward(batch)
            labels = batch["masked_lm_ids"].to(dev)
            loss = (F.cross_entropy(mlm.flatten(0, 1), labels.flatten(), ignore_index=0)
                    + F.cross_entropy(nsp, batch["next_sentence_labels"].to(dev)))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            yield len(idx) * self.ctx.world_size

    @torch.no_grad()
    def evaluate(self, epoch: int) -> float:
        """Masked-LM accuracy; each rank scores its part of the evaluation set, the counts are
        summed over ranks (the plain module runs it: no DDP collectives in evaluation)."""
        model = distributed.unwrap(self.model)
        model.eval()
        bs, correct, total = self.config.eval_batch_size, 0, 0
        part = distributed.shard(len(self.val["input_ids"]), self.ctx)
        for i in range(part.start, part.stop, bs):
            batch = {k: v[i:min(i + bs, part.stop)] for k, v in self.val.items()}
            mlm, _ = self._forward(batch, model)
            c, t = masked_lm_hits(mlm.cpu(), batch["masked_lm_ids"])
            correct, total = correct + c, total + t
        correct, total = distributed.all_reduce_sum([correct, total], self.ctx)
        return correct / max(total, 1)


def masked_lm_hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) over masked positions; label 0 ([PAD]) marks an unused slot."""
    used = labels != 0
    return int(((logits.argmax(-1) == labels) & used).sum()), int(used.sum())


def make(scale: str, overrides: dict) -> BertWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return BertWorkload(get_spec("bert"), scale, config)
