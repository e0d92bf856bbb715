"""Image classification workload: configs for both scales and the train/eval functions.

Reference: MLPerf Training v1.1 closed ResNet-50 v1.5 with SGD + momentum, polynomial
(power 2) learning-rate decay after a linear warm-up, label smoothing 0.1, target 75.90 % top-1.
Mini: the same recipe on ResNet-mini and the generated shapes data set (data.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from mlpace.benchmarks.resnet import data as image_data
from mlpace.benchmarks.resnet.model import mlperf_tensor_names, resnet50, resnet_mini
from mlpace.harness import distributed
from mlpace.harness.config import apply_overrides
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext, Workload, weight_decay_groups
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class ResnetConfig:
    model: str = "resnet_mini"           # resnet_mini | resnet50
    data_path: str = ""                  # ImageNet root (reference); empty = generated mini data
    image_size: int = 32
    blocks: tuple[int, ...] = (1, 1, 1)  # bottleneck blocks per stage (mini)
    widths: tuple[int, ...] = (16, 32, 64)
    num_classes: int = 10
    batch_size: int = 128                # global batch size
    eval_batch_size: int = 500
    base_lr: float = 0.4
    end_lr: float = 0.0001
    warmup_epochs: float = 1.0
    decay_epochs: float = 8.0            # polynomial decay reaches end_lr here
    poly_power: float = 2.0
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    num_workers: int = 0                 # data-loader processes (reference scale)
    train_per_class: int = 600           # mini data set size
    val_per_class: int = 100
    mini_classes: int = 10               # how many of the generator's shape classes to use
    threads: int = 0                     # torch CPU threads (0 = torch's default)


CONFIGS = {
    "mini": ResnetConfig(),
    # MLPerf v1.1 closed recipe (SGD variant, the choice of reference implementations at 1-8 GPUs).
    "reference": ResnetConfig(model="resnet50", image_size=224, num_classes=1000, batch_size=1024,
                              eval_batch_size=250, base_lr=2.048, end_lr=0.0001,
                              warmup_epochs=5.0, decay_epochs=37.0, poly_power=2.0,
                              momentum=0.9, weight_decay=5e-5, label_smoothing=0.1,
                              num_workers=8),
}


class ResnetWorkload(Workload):
    supports_distributed = True      # uses the hooks of mlpace.harness.distributed

    def prepare_data(self, data_dir: Path) -> None:
        cfg = self.config
        self.root = self.locate_data(
            data_dir, "ImageNet-layout data set",
            (f"resnet-mini-{cfg.mini_classes}x{cfg.train_per_class}x{cfg.val_per_class}", image_data.MINI_VERSION,
             lambda d: image_data.generate_mini(d, cfg.train_per_class, cfg.val_per_class, cfg.mini_classes)),
            MISSING_REFERENCE)

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        self.begin_setup(ctx)
        # Augmentation draws from a per-rank seed; the shuffle is the same on every rank,
        # which then takes its own part of each global batch (one generator when alone).
        self.generator = torch.Generator().manual_seed(distributed.rank_seed(ctx.seed, ctx))
        self.shuffle = (self.generator if ctx.world_size == 1
                        else torch.Generator().manual_seed(ctx.seed))
        local_batch = distributed.local_batch(cfg.batch_size, ctx)
        self.in_memory = cfg.model == "resnet_mini"
        if self.in_memory:
            self.train_x, self.train_y, classes = image_data.load_into_memory(self.root, "train")
            self.val_x, self.val_y, _ = image_data.load_into_memory(self.root, "val")
            self.n_train, self.n_val = len(self.train_y), len(self.val_y)
            self.model = resnet_mini(len(classes), cfg.blocks, cfg.widths)
        else:
            train = image_data.ImageFolder(self.root, "train", train=True, size=cfg.image_size, seed=ctx.seed)
            val = image_data.ImageFolder(self.root, "val", train=False, size=cfg.image_size)
            sampler = distributed.train_sampler(train, ctx, ctx.seed)
            self.train_loader = torch.utils.data.DataLoader(
                train, batch_size=local_batch, shuffle=sampler is None, sampler=sampler,
                drop_last=True, num_workers=cfg.num_workers, generator=self.generator,
                pin_memory=ctx.is_cuda)
            self.val_loader = torch.utils.data.DataLoader(
                distributed.shard_dataset(val, ctx), batch_size=cfg.eval_batch_size,
                num_workers=cfg.num_workers)
            self.n_train, self.n_val = len(train), len(val)
            self.model = resnet50(len(train.classes))
        self.model = self.model.to(ctx.device, memory_format=torch.channels_last)
        self.model = distributed.wrap_model(self.model, ctx)
        self.optimizer = torch.optim.SGD(
            weight_decay_groups(self.model, cfg.weight_decay),
            lr=cfg.base_lr, momentum=cfg.momentum)
        self.steps_per_epoch = self.n_train // cfg.batch_size
        self.step = 0

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: constants.SGD,
            "sgd_opt_base_learning_rate": cfg.base_lr,
            "sgd_opt_end_learning_rate": cfg.end_lr,
            "sgd_opt_learning_rate_decay_poly_power": cfg.poly_power,
            "sgd_opt_learning_rate_decay_steps": int(cfg.decay_epochs * self.steps_per_epoch),
            "sgd_opt_weight_decay": cfg.weight_decay,
            "sgd_opt_momentum": cfg.momentum,
            constants.OPT_LR_WARMUP_EPOCHS: cfg.warmup_epochs,
            "model_bn_span": cfg.batch_size // self.ctx.world_size,
            "label_smoothing": cfg.label_smoothing,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(distributed.unwrap(self.model))

    def train_samples(self) -> int:
        return self.n_train

    def eval_samples(self) -> int:
        return self.n_val

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then polynomial decay to end_lr (MLPerf's SGD schedule)."""
        cfg = self.config
        warmup = cfg.warmup_epochs * self.steps_per_epoch
        if step < warmup:
            return cfg.base_lr * (step + 1) / warmup
        decay_steps = max(1.0, cfg.decay_epochs * self.steps_per_epoch - warmup)
        progress = min(1.0, (step - warmup) / decay_steps)
        return (cfg.base_lr - cfg.end_lr) * (1 - progress) ** cfg.poly_power + cfg.end_lr

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        with self.ctx.autocast():
            loss = F.cross_entropy(self.model(x), y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """Per-image centring: the backgrounds' random colour carries no class information."""
        x = x.float().div_(64)
        return x - x.mean(dim=(2, 3), keepdim=True)

    def _mini_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise and random-translate (pad 4, crop) a batch held in memory."""
        x = self.normalise(self.train_x[idx])
        n, _, h, w = x.shape
        x = F.pad(x, (4, 4, 4, 4), mode="reflect")
        dx = torch.randint(0, 9, (n,), generator=self.generator)
        dy = torch.randint(0, 9, (n,), generator=self.generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        x = x[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
        return x, self.train_y[idx]

    def train_epoch(self, epoch: int) -> Iterator[int]:
        self.model.train()
        dev = self.ctx.device
        if self.in_memory:
            order = torch.randperm(self.n_train, generator=self.shuffle)
            bs = self.config.batch_size
            for i in range(self.steps_per_epoch):
                batch = order[i * bs:(i + 1) * bs]          # the global batch ...
                x, y = self._mini_batch(batch[distributed.shard(bs, self.ctx)])  # ... this rank's part
                self._train_step(x.to(dev).contiguous(memory_format=torch.channels_last), y.to(dev))
                yield len(batch)
        else:
            distributed.set_epoch(self.train_loader, epoch)
            for x, y in self.train_loader:
                self._train_step(x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last),
                                 y.to(dev, non_blocking=True))
                yield len(y) * self.ctx.world_size

    @torch.no_grad()
    def evaluate(self, epoch: int) -> float:
        # Each rank scores its own part of the validation set; the counts are summed over ranks.
        # The plain module runs it: a DDP forward would add collectives the ranks may not share.
        model = distributed.unwrap(self.model)
        model.eval()
        correct, total = 0, 0
        if self.in_memory:
            bs = self.config.eval_batch_size
            part = distributed.shard(self.n_val, self.ctx)
            batches = ((self.normalise(self.val_x[i:min(i + bs, part.stop)]),
                        self.val_y[i:min(i + bs, part.stop)])
                       for i in range(part.start, part.stop, bs))
        else:
            batches = iter(self.val_loader)
        for x, y in batches:
            x = x.to(self.ctx.device).contiguous(memory_format=torch.channels_last)
            with self.ctx.autocast():
                pred = model(x).argmax(1)
            correct += int((pred.cpu() == y).sum())
            total += len(y)
        correct, total = distributed.all_reduce_sum([correct, total], self.ctx)
        return correct / max(total, 1)


MISSING_REFERENCE = ("the reference resnet needs ImageNet in class-folder layout: "
                     "pass --set data_path=/path/to/imagenet (with train/ and val/)")


def make(scale: str, overrides: dict) -> ResnetWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return ResnetWorkload(get_spec("resnet"), scale, config)
