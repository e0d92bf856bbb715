"""Medical image segmentation workload: 3D U-Net on KiTS19, at both scales.

Reference: MLPerf Training v1.0/v1.1 closed unet3d (image_segmentation/pytorch): 3D U-Net
(filters 32-64-128-256-320), SGD with momentum 0.9, base learning rate 0.8 reached by a linear
warm-up over 200 epochs from 1e-4, batch size 2, 128³ training patches with 40 % foreground
oversampling and random flips, Dice + cross-entropy loss, sliding-window evaluation (128³
windows, overlap 0.5, Gaussian weights) every 20 epochs; target mean DICE 0.908 over kidney
and tumour. An epoch is one patch from each of the 168 training cases.
Mini: the same network with three narrow levels on generated 48³ volumes (data.py), 32³ patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from mlpace.benchmarks.unet3d import data as kits
from mlpace.benchmarks.unet3d.metrics import dice_ce_loss, dice_score, sliding_window_inference
from mlpace.benchmarks.unet3d.model import REFERENCE_FILTERS, UNet3D, mlperf_tensor_names
from mlpace.errors import MlpaceError
from mlpace.harness import distributed
from mlpace.harness.config import apply_overrides
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext, Workload
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class Unet3dConfig:
    data_path: str = ""                  # KiTS19 root (reference); empty = generated mini data
    filters: tuple[int, ...] = (8, 16, 32)
    patch_size: int = 32                 # training patch edge (training_input_shape)
    roi_size: int = 32                   # sliding-window edge (validation_input_shape)
    overlap: float = 0.5                 # sliding-window overlap
    batch_size: int = 4                  # global batch size
    eval_batch_size: int = 8             # windows per forward pass in evaluation
    optimizer: str = "sgd"               # sgd | adam
    base_lr: float = 0.8
    init_lr: float = 1e-4                # warm-up starts here
    warmup_epochs: int = 1
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    oversampling: float = 0.4            # share of patches centred on foreground
    flip_prob: float = 1 / 3             # per axis
    train_cases: int = 64                # mini data set size
    eval_cases: int = 12
    volume_size: int = 48
    threads: int = 0                     # torch CPU threads (0 = torch's default)


CONFIGS = {
    # Mini: three levels learn faster per CPU second than four on 32³ patches; a lower rate and
    # more foreground patches made the slowest seeds find the tumours sooner.
    "mini": Unet3dConfig(base_lr=0.4, oversampling=0.6),
    "reference": Unet3dConfig(filters=REFERENCE_FILTERS, patch_size=128, roi_size=128, batch_size=2,
                              eval_batch_size=1, base_lr=0.8, init_lr=1e-4, warmup_epochs=200,
                              momentum=0.9, weight_decay=0.0, oversampling=0.4),
}


class Unet3dWorkload(Workload):
    supports_distributed = True      # uses the hooks of mlpace.harness.distributed

    def prepare_data(self, data_dir: Path) -> None:
        cfg = self.config
        size = cfg.volume_size
        self.root = self.locate_data(
            data_dir, "KiTS19-layout data set",
            (f"unet3d-mini-{cfg.train_cases}-{cfg.eval_cases}-{size}", kits.MINI_VERSION,
             lambda d: kits.generate_mini(d, cfg.train_cases, cfg.eval_cases, (size,) * 3)),
            "the reference unet3d needs KiTS19 (case_XXXXX/imaging.nii.gz and "
            "segmentation.nii.gz): pass --set data_path=/path/to/kits19/data")

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        if cfg.optimizer not in ("sgd", "adam"):
            raise MlpaceError(f"unet3d optimizer must be sgd or adam, got {cfg.optimizer!r}")
        self.begin_setup(ctx)
        # Patches and flips draw from a per-rank stream; the case order is the same on every
        # rank (each takes its part of every batch), and alone the two are one stream.
        self.rng = np.random.default_rng(distributed.rank_seed(ctx.seed, ctx))
        self.shuffle = self.rng if ctx.world_size == 1 else np.random.default_rng(ctx.seed)
        self.local_batch = distributed.local_batch(cfg.batch_size, ctx)
        train_cases, eval_cases = kits.list_cases(self.root)
        self.train = kits.load_split(train_cases, (cfg.patch_size,) * 3)
        self.val = kits.load_split(eval_cases, (cfg.roi_size,) * 3)
        # Foreground voxels of every case, for oversampling (found once, untimed).
        self.foreground = [np.argwhere(y > 0) for _, y in self.train]
        # channels-last 3D convolutions are 10-20 % faster on CPU (oneDNN) and fine on GPUs
        self.model = UNet3D(1, 3, cfg.filters).to(ctx.device, memory_format=torch.channels_last_3d)
        self.model = distributed.wrap_model(self.model, ctx)
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.init_lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay, nesterov=True)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.init_lr,
                                              weight_decay=cfg.weight_decay)
        self.steps_per_epoch = max(1, len(self.train) // cfg.batch_size)

    def hyperparameters(self) -> dict:
        cfg = self.config
        shape = [cfg.patch_size] * 3
        return {
            **self.batch_hyperparameters(),
            constants.OPT_NAME: cfg.optimizer,
            constants.OPT_BASE_LR: cfg.base_lr,
            constants.OPT_LR_WARMUP_EPOCHS: cfg.warmup_epochs,
            "opt_initial_learning_rate": cfg.init_lr,
            constants.OPT_LR_DECAY_BOUNDARY_EPOCHS: list(cfg.lr_decay_epochs),
            constants.OPT_LR_DECAY_FACTOR: cfg.lr_decay_factor,
            constants.OPT_WEIGHT_DECAY: cfg.weight_decay,
            "opt_momentum": cfg.momentum,
            "oversampling": cfg.oversampling,
            "training_input_shape": shape,
            "validation_input_shape": [cfg.roi_size] * 3,
            "validation_overlap": cfg.overlap,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(distributed.unwrap(self.model))

    def train_samples(self) -> int:
        return len(self.train)

    def eval_samples(self) -> int:
        return len(self.val)

    def learning_rate(self, epoch: int) -> float:
        """Linear warm-up from init_lr to base_lr, then step decays (the reference's schedule)."""
        cfg = self.config
        if epoch <= cfg.warmup_epochs:
            return cfg.init_lr + (cfg.base_lr - cfg.init_lr) * epoch / max(1, cfg.warmup_epochs)
        return cfg.base_lr * cfg.lr_decay_factor ** sum(epoch > e for e in cfg.lr_decay_epochs)

    def _patch(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        """A random training patch; with probability `oversampling` one around a foreground voxel."""
        x, y = self.train[case]
        size = self.config.patch_size
        fg = self.foreground[case]
        corner = []
        centre = fg[self.rng.integers(len(fg))] if len(fg) and self.rng.random() < self.config.oversampling else None
        for axis, n in enumerate(x.shape):
            if centre is None:
                corner.append(int(self.rng.integers(0, n - size + 1)))
            else:   # the voxel anywhere inside the patch, the patch inside the volume
                lo = int(np.clip(centre[axis] - self.rng.integers(0, size), 0, n - size))
                corner.append(lo)
        index = tuple(slice(c, c + size) for c in corner)
        px, py = x[index], y[index]
        for axis in range(3):
            if self.rng.random() < self.config.flip_prob:
                px, py = np.flip(px, axis), np.flip(py, axis)
        return px, py

    def train_epoch(self, epoch: int) -> Iterator[int]:
        cfg = self.config
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch)
        order = self.shuffle.permutation(len(self.train))
        dev = self.ctx.device
        for step in range(self.steps_per_epoch):
            batch = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            patches = [self._patch(int(c)) for c in batch[distributed.shard(len(batch), self.ctx)]]
            x = torch.from_numpy(np.stack([p[0] for p in patches]))[:, None].to(dev)
            x = x.contiguous(memory_format=torch.channels_last_3d)
            y = torch.from_numpy(np.stack([p[1] for p in patches])).to(dev)
            with self.ctx.autocast():
                logits = self.model(x)
            loss = dice_ce_loss(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            yield len(patches) * self.ctx.world_size

    def evaluate(self, epoch: int) -> float:
        """Mean over cases of the kidney and tumour DICE, then mean of the two."""
        return float(self.dice_per_class().mean())

    @torch.no_grad()
    def dice_per_class(self) -> torch.Tensor:
        """[kidney DICE, tumour DICE], each averaged over the evaluation cases.

        Each rank scores its own part of the cases; the sums are added over ranks. The plain
        module runs it: a DDP forward would add collectives the ranks may not share."""
        cfg = self.config
        model = distributed.unwrap(self.model)
        model.eval()
        total = torch.zeros(2, dtype=torch.float64)
        pad_value = (kits.CLIP_HU[0] - kits.MEAN_HU) / kits.STD_HU
        for x, y in self.val[distributed.shard(len(self.val), self.ctx)]:
            image = torch.from_numpy(x)[None, None].to(self.ctx.device)
            label = torch.from_numpy(y)[None].to(self.ctx.device)
            logits, label = sliding_window_inference(
                model, image, label, cfg.roi_size, cfg.overlap, pad_value, cfg.eval_batch_size,
                autocast=self.ctx.autocast)
            total += dice_score(logits, label)[0].cpu().double()
        kidney, tumour = distributed.all_reduce_sum(total.tolist(), self.ctx)
        return torch.tensor([kidney, tumour]) / len(self.val)


def make(scale: str, overrides: dict) -> Unet3dWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return Unet3dWorkload(get_spec("unet3d"), scale, config)
