"""Speech recognition workload: RNN-T on LibriSpeech, at both scales.

Reference: MLPerf Training v1.0/v1.1 closed rnnt (rnn_speech_recognition/pytorch, config
baseline_v3-1023sp.yaml and scripts/train.sh): 80 log-mel features, 3 frames stacked and
subsampled, RNN-T with a 2 + 3 layer LSTM encoder of 1024 (time stacking 2), a 2-layer LSTM
prediction network of 512 and a joint network of 512 over 1023 SentencePieces + blank; speed
perturbation 0.85-1.15 and SpecAugment (2 frequency masks up to 20 bins, 10 time masks up to
3 % of the utterance); LAMB (betas 0.9/0.999, eps 1e-9, weight decay 1e-3), learning rate
4e-3 with 6 epochs of linear warm-up, 40 epochs of hold, then x0.935 an epoch down to 1e-5;
global batch 1024 (8 accumulation steps), 6 duration buckets, training utterances up to
16.7 s; evaluation of EMA (0.999) weights by greedy decoding on dev-clean every epoch;
target WER 0.058.
The tokenizer is the reference's: a 1023-piece unigram SentencePiece model trained on the
transcripts of the training subsets (made once, cached in the data folder, keyed by the
transcripts' hash), or a given `sentencepiece_model` file.
Mini: the same model family over characters (28 + blank), one LSTM layer each side, on the
generated LibriSpeech-layout corpus of data.py.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from mlpace.benchmarks.rnnt import data as libri
from mlpace.benchmarks.rnnt.features import FeatureSpec, LogMel, spec_augment, speed_perturb, splice
from mlpace.benchmarks.rnnt.loss import rnnt_loss
from mlpace.benchmarks.rnnt.metrics import (CharTokenizer, SentencePieceTokenizer, train_sentencepieces,
                                            word_error_rate)
from mlpace.benchmarks.rnnt.model import RNNT, mlperf_tensor_names
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides
from mlpace.harness.datasets import cached_dataset
from mlpace.harness.mlperf_log import constants
from mlpace.harness.workload import RunContext, Workload, weight_decay_groups
from mlpace.rules.benchmarks import get_spec


@dataclass(frozen=True)
class RnntConfig:
    data_path: str = ""                  # LibriSpeech root (reference); empty = generated mini data
    sentencepiece_model: str = ""        # a SentencePiece model file to use as the tokenizer, else:
    sentencepiece_vocab: int = 0         # train one of this many pieces on the training transcripts
                                         # (the reference: 1023, scripts/create_sentencepieces.sh);
                                         # 0 = the reference's 28 characters
    # features
    n_mels: int = 40
    frame_stack: int = 3                 # frames stacked and subsampled
    max_duration: float = 16.7           # training utterances up to this many seconds
    speed_min: float = 0.9
    speed_max: float = 1.1
    freq_masks: int = 1
    min_freq: int = 0
    max_freq: int = 6
    time_masks: int = 1
    min_time: int = 0
    max_time: float = 0.03               # fraction of the utterance's frames
    # model
    enc_n_hid: int = 160
    enc_pre_rnn_layers: int = 1
    enc_post_rnn_layers: int = 1
    enc_stack_time_factor: int = 2
    enc_dropout: float = 0.0
    pred_n_hid: int = 96
    pred_rnn_layers: int = 1
    pred_dropout: float = 0.0
    joint_n_hid: int = 128
    joint_dropout: float = 0.0
    forget_gate_bias: float = 1.0
    weights_init_scale: float = 1.0
    blank_bias: float = 0.0              # added to the joint's initial blank logit (mini: see CONFIGS)
    # optimisation
    batch_size: int = 32                 # global batch size
    grad_accumulation_steps: int = 1
    optimizer: str = "lamb"              # lamb | adam
    base_lr: float = 4e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    hold_epochs: float = 10.0
    lr_exp_gamma: float = 0.935          # per epoch after the hold
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-9
    weight_decay: float = 1e-3
    clip_norm: float = float("inf")      # global gradient-norm clip (inf = none, the reference's default)
    ema: float = 0.0                     # evaluate an exponential moving average of the weights (0 = off)
    num_buckets: int = 6                 # duration buckets for batching
    # evaluation
    eval_batch_size: int = 64
    max_symbols_per_step: int = 30
    max_symbols: int = 300               # per utterance
    # mini data set
    train_utterances: int = 480
    eval_utterances: int = 80
    threads: int = 0                     # torch CPU threads in setup/train/eval (0 = leave as set)


CONFIGS = {
    # Mini: LAMB at 0.01 (LAMB's per-tensor trust ratio wants a larger rate than the reference's
    # 4e-3 at this size); a +3 initial blank logit, without which the model sits for many epochs
    # at the language-model-only plateau (labels emitted before the audio that carries them).
    # One torch thread: steps this small gain nothing from intra-op threads and lose much when
    # the cores are busy (2 epochs: 11 CPU-s on 1 thread, 62 CPU-s on 2, on a loaded 2-core box).
    "mini": RnntConfig(base_lr=0.01, blank_bias=3.0, threads=1),
    "reference": RnntConfig(
        n_mels=80, frame_stack=3, speed_min=0.85, speed_max=1.15, freq_masks=2, max_freq=20,
        time_masks=10, max_time=0.03, enc_n_hid=1024, enc_pre_rnn_layers=2, enc_post_rnn_layers=3,
        enc_dropout=0.1, pred_n_hid=512, pred_rnn_layers=2, pred_dropout=0.3, joint_n_hid=512,
        joint_dropout=0.3, sentencepiece_vocab=1023, batch_size=1024, grad_accumulation_steps=8, base_lr=4e-3, min_lr=1e-5,
        warmup_epochs=6, hold_epochs=40, lr_exp_gamma=0.935, ema=0.999, eval_batch_size=2),
}

SENTENCEPIECE_VERSION = 1     # bump when train_sentencepieces' recipe changes


class RnntWorkload(Workload):
    def prepare_data(self, data_dir: Path) -> None:
        cfg = self.config
        self.root = self.locate_data(
            data_dir, "LibriSpeech-layout data set",
            (f"rnnt-mini-{cfg.train_utterances}-{cfg.eval_utterances}", libri.MINI_VERSION,
             lambda d: libri.generate_mini(d, cfg.train_utterances, cfg.eval_utterances)),
            "the reference rnnt needs LibriSpeech (<subset>/<speaker>/<chapter>/*.flac "
            "and *.trans.txt): pass --set data_path=/path/to/LibriSpeech")
        self.sentencepiece_path = self._sentencepieces(Path(data_dir))

    def _sentencepieces(self, data_dir: Path) -> str:
        """The SentencePiece model file of this run ('' = characters): the given one, or the
        reference recipe's, trained once on the training transcripts and cached (untimed)."""
        cfg = self.config
        if cfg.sentencepiece_model or not cfg.sentencepiece_vocab:
            return cfg.sentencepiece_model
        texts = libri.training_transcripts(self.root)
        if not texts:
            raise MlpaceError(f"no training transcripts under {self.root} to make the SentencePiece "
                              "tokenizer from: pass --set sentencepiece_model=/path/to/librispeech1023.model")
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        folder = cached_dataset(data_dir, f"rnnt-sentencepieces-{cfg.sentencepiece_vocab}-{key}", SENTENCEPIECE_VERSION,
                                lambda d: train_sentencepieces(texts, d, cfg.sentencepiece_vocab))
        return str(folder / f"librispeech{cfg.sentencepiece_vocab}.model")

    def _tokenizer(self):
        if self.sentencepiece_path:
            return SentencePieceTokenizer(self.sentencepiece_path)
        return CharTokenizer()

    def build_model(self) -> RNNT:
        return build_model(self.config, self.tokenizer.n_classes)

    @contextlib.contextmanager
    def _threads(self):
        """`threads` torch threads inside this workload's own methods only (restored after)."""
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def setup(self, ctx: RunContext) -> None:
        with self._threads():
            self._setup(ctx)

    def _setup(self, ctx: RunContext) -> None:
        cfg = self.config
        self.ctx = ctx
        if cfg.optimizer not in ("lamb", "adam"):
            raise MlpaceError(f"rnnt optimizer must be lamb or adam, got {cfg.optimizer!r}")
        torch.manual_seed(ctx.seed)
        self.rng = np.random.default_rng(ctx.seed)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        train, held_out = libri.list_splits(self.root, cfg.max_duration)
        self._load_evaluation(held_out)
        self.train_audio = [torch.from_numpy(libri.read_audio(u.path)) for u in train]
        self.train_labels = [torch.tensor(self.tokenizer.encode(u.text), dtype=torch.long) for u in train]
        self.train_seconds = np.array([u.seconds for u in train])
        self.model = self.build_model().to(ctx.device)
        params = weight_decay_groups(self.model, cfg.weight_decay)
        if cfg.optimizer == "lamb":
            from mlpace.benchmarks.bert.model import Lamb
            self.optimizer = Lamb(params, lr=cfg.base_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.epsilon)
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.base_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.epsilon)
        self.ema_model = copy.deepcopy(self.model).eval() if cfg.ema else None
        self.steps_per_epoch = self._steps_per_epoch(len(self.train_audio))
        self.step = 0
        self.losses: list[float] = []          # per-utterance training loss of every (micro)batch

    def _steps_per_epoch(self, utterances: int) -> int:
        """Full global batches only, each split into `grad_accumulation_steps` equal micro-batches
        (a short batch would claim a global batch it does not have, and split into empty parts)."""
        cfg = self.config
        if cfg.grad_accumulation_steps < 1 or cfg.batch_size % cfg.grad_accumulation_steps:
            raise MlpaceError(f"rnnt batch_size {cfg.batch_size} must be a multiple of "
                              f"grad_accumulation_steps {cfg.grad_accumulation_steps} (1 or more)")
        if utterances < cfg.batch_size:
            raise MlpaceError(f"rnnt has {utterances} training utterances (up to {cfg.max_duration:g} s), "
                              f"fewer than one global batch of {cfg.batch_size}: lower batch_size")
        return utterances // cfg.batch_size

    def load_evaluation(self) -> None:
        """Only what evaluation needs (tokenizer, dev-clean texts and features), without the
        training subsets: inference serves these (at reference scale, without listing 960 h)."""
        held_out = libri.list_subset(self.root, libri.EVAL_SUBSET)
        if not held_out:
            raise MlpaceError(f"no {libri.EVAL_SUBSET} utterances under {self.root} "
                              "(<speaker>/<chapter>/*.flac + *.trans.txt)")
        self._load_evaluation(held_out)

    def _load_evaluation(self, held_out: list) -> None:
        cfg = self.config
        self.tokenizer = self._tokenizer()
        self.features = LogMel(FeatureSpec(n_mels=cfg.n_mels, stack=cfg.frame_stack))
        self.eval_texts = [u.text for u in held_out]
        # evaluation features are fixed (no augmentation): computed once, untimed
        eval_gen = torch.Generator().manual_seed(0)
        self.eval_features = [splice(self.features(torch.from_numpy(libri.read_audio(u.path)), eval_gen),
                                     cfg.frame_stack) for u in held_out]

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(cfg.grad_accumulation_steps),
            constants.OPT_NAME: cfg.optimizer,
            constants.OPT_BASE_LR: cfg.base_lr,
            constants.OPT_LAMB_EPSILON: cfg.epsilon,
            constants.OPT_LAMB_LR_DECAY_POLY_POWER: cfg.lr_exp_gamma,   # the reference logs its exp gamma here
            constants.OPT_LAMB_LR_HOLD_EPOCHS: cfg.hold_epochs,
            constants.OPT_LR_WARMUP_EPOCHS: cfg.warmup_epochs,
            constants.OPT_WEIGHT_DECAY: cfg.weight_decay,
            constants.OPT_LAMB_BETA_1: cfg.beta1,
            constants.OPT_LAMB_BETA_2: cfg.beta2,
            constants.OPT_GRADIENT_CLIP_NORM: cfg.clip_norm,
            constants.OPT_LR_ALT_DECAY_FUNC: True,
            constants.OPT_LR_ALT_WARMUP_FUNC: True,
            constants.OPT_LAMB_LR_MIN: cfg.min_lr,
            constants.MODEL_WEIGHTS_INITIALIZATION_SCALE: cfg.weights_init_scale,
            constants.MODEL_EVAL_EMA_FACTOR: cfg.ema,
            constants.DATA_TRAIN_MAX_DURATION: cfg.max_duration,
            constants.DATA_TRAIN_NUM_BUCKETS: cfg.num_buckets,
            constants.DATA_SPEED_PERTURBATON_MIN: cfg.speed_min,
            constants.DATA_SPEED_PERTURBATON_MAX: cfg.speed_max,
            constants.DATA_SPEC_AUGMENT_FREQ_N: cfg.freq_masks,
            constants.DATA_SPEC_AUGMENT_FREQ_MIN: cfg.min_freq,
            constants.DATA_SPEC_AUGMENT_FREQ_MAX: cfg.max_freq,
            constants.DATA_SPEC_AUGMENT_TIME_N: cfg.time_masks,
            constants.DATA_SPEC_AUGMENT_TIME_MIN: cfg.min_time,
            constants.DATA_SPEC_AUGMENT_TIME_MAX: cfg.max_time,
            constants.EVAL_MAX_PREDICTION_SYMBOLS: cfg.max_symbols,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(getattr(self, "model", None))

    def train_samples(self) -> int:
        return len(self.train_audio)

    def eval_samples(self) -> int:
        return len(self.eval_features)

    def learning_rate(self, step: int, epoch: int) -> float:
        """The reference's 'exponential' policy: linear warm-up over steps, hold, then
        lr_exp_gamma per epoch, floored at min_lr."""
        cfg = self.config
        warmup = cfg.warmup_epochs * self.steps_per_epoch
        hold = cfg.hold_epochs * self.steps_per_epoch
        if step < warmup:
            factor = (step + 1) / (warmup + 1)
        elif step < warmup + hold:
            factor = 1.0
        else:
            factor = cfg.lr_exp_gamma ** max(0.0, epoch - 1 - cfg.warmup_epochs - cfg.hold_epochs)
        return max(factor * cfg.base_lr, cfg.min_lr)

    def _batches(self) -> list[np.ndarray]:
        """Shuffled batches drawn from `num_buckets` duration buckets (less padding)."""
        cfg = self.config
        order = np.argsort(self.train_seconds, kind="stable")
        buckets = np.array_split(order, max(1, cfg.num_buckets))
        pool = np.concatenate([self.rng.permutation(b) for b in buckets])
        batches = [pool[i:i + cfg.batch_size] for i in range(0, self.steps_per_epoch * cfg.batch_size, cfg.batch_size)]
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def _train_features(self, index: int) -> torch.Tensor:
        cfg = self.config
        audio = self.train_audio[index]
        if cfg.speed_max > cfg.speed_min:
            audio = speed_perturb(audio, float(self.rng.uniform(cfg.speed_min, cfg.speed_max)))
        x = self.features(audio, self.generator)
        if cfg.freq_masks or cfg.time_masks:
            x = spec_augment(x, cfg.freq_masks, cfg.max_freq, cfg.time_masks, cfg.max_time, self.rng,
                             cfg.min_freq, cfg.min_time)
        return splice(x, cfg.frame_stack)

    def train_epoch(self, epoch: int) -> Iterator[int]:
        with self._threads():
            yield from self._train_epoch(epoch)

    def _train_epoch(self, epoch: int) -> Iterator[int]:
        cfg = self.config
        dev = self.ctx.device
        self.model.train()
        for batch in self._batches():
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            for chunk in np.array_split(batch, cfg.grad_accumulation_steps):
                x, x_lens = pad([self._train_features(int(i)) for i in chunk])
                y, y_lens = pad([self.train_labels[int(i)] for i in chunk])
                with self.ctx.autocast():
                    logits, f_lens = self.model(x.to(dev), x_lens.to(dev), y.to(dev))
                loss = rnnt_loss(logits, y.to(dev), f_lens, y_lens.to(dev), blank=self.model.blank, reduction="sum")
                (loss / len(batch)).backward()
                self.losses.append(float(loss.detach()) / len(chunk))
            if math.isfinite(cfg.clip_norm):
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
            self.optimizer.step()
            self.step += 1
            if self.ema_model is not None:
                with torch.no_grad():
                    for e, p in zip(self.ema_model.parameters(), self.model.parameters()):
                        e.lerp_(p, 1 - cfg.ema)
            yield len(batch) * self.ctx.world_size

    def eval_model(self) -> RNNT:
        return self.ema_model if self.ema_model is not None else self.model

    @torch.no_grad()
    def transcribe(self, features: list[torch.Tensor], model: RNNT | None = None) -> list[str]:
        cfg = self.config
        model = model or self.eval_model()
        model.eval()
        texts = []
        for i in range(0, len(features), cfg.eval_batch_size):
            x, lens = pad(features[i:i + cfg.eval_batch_size])
            hyps = model.greedy_decode(x.to(self.ctx.device), lens.to(self.ctx.device),
                                       cfg.max_symbols_per_step, cfg.max_symbols)
            texts += [self.tokenizer.decode(h) for h in hyps]
        return texts

    def evaluate(self, epoch: int) -> float:
        """Word error rate of greedy transcripts of the held-out utterances."""
        with self._threads():
            return word_error_rate(self.eval_texts, self.transcribe(self.eval_features))

    def trained_model(self):
        return self.eval_model()


def build_model(cfg: RnntConfig, n_classes: int) -> RNNT:
    """The RNN-T of `cfg` over `n_classes` outputs (the tokenizer's symbols + blank)."""
    model = RNNT(n_classes, cfg.n_mels * cfg.frame_stack, cfg.enc_n_hid, cfg.enc_pre_rnn_layers,
                 cfg.enc_post_rnn_layers, cfg.enc_stack_time_factor, cfg.enc_dropout, cfg.pred_n_hid,
                 cfg.pred_rnn_layers, cfg.pred_dropout, cfg.joint_n_hid, cfg.joint_dropout,
                 cfg.forget_gate_bias, cfg.weights_init_scale)
    if cfg.blank_bias:
        with torch.no_grad():
            model.joint_net[-1].bias[model.blank] += cfg.blank_bias
    return model


def pad(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length tensors along a new batch axis, zero-padded; and their lengths."""
    lens = torch.tensor([len(t) for t in items], dtype=torch.long)
    out = items[0].new_zeros((len(items), int(lens.max()), *items[0].shape[1:]))
    for i, t in enumerate(items):
        out[i, :len(t)] = t
    return out, lens


def make(scale: str, overrides: dict) -> RnntWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return RnntWorkload(get_spec("rnnt"), scale, config)
