"""Reinforcement learning workload: MiniGo, generation by generation.

One harness epoch is one MLPerf minigo *generation*: self-play games with MCTS by the current
network (timed), training on the games of the last `window_size` generations (timed), then the
evaluation: a match of `eval_games` games against the fixed reference player, colours
alternating, whose win rate is the quality (timed, as in MLPerf). The target is 50 %.

Reference: the MLPerf v1.0/v1.1 closed set-up, 19x19 Go with the reference network and its
13 input planes (values as in the reference's flags and the published closed logs);
it needs the target player's weights (`--set reference_player=FILE`, an mlpace weights file).
Mini: 5x5 Go, a small network, and a reference player that mlpace ships
(reference_player.json, made by `python -m mlpace.benchmarks.minigo.reference`; the games,
examples and that player's file: `mlpace.benchmarks.minigo.data`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mlpace.benchmarks.minigo.data import reference_player_path, symmetry, training_examples
from mlpace.benchmarks.minigo.go import Position
from mlpace.benchmarks.minigo.mcts import match, network_evaluator, play_games
from mlpace.benchmarks.minigo.model import MiniGoNet, load_weights, mlperf_tensor_names, save_weights
from mlpace.errors import MlpaceError
from mlpace.harness.config import apply_overrides
from mlpace.harness.workload import RunContext, Workload
from mlpace.rules.benchmarks import get_spec

@dataclass(frozen=True)
class MinigoConfig:
    board_size: int = 5
    komi: float = 3.5
    width: int = 32                      # conv filters
    blocks: int = 2                      # residual blocks
    fc_width: int = 32                   # value head hidden units
    features: str = "basic"              # input planes: basic (3) | mlperf07 (13, the reference's)
    reference_player: str = ""           # weights file; empty = the player mlpace ships (mini)
    selfplay_games: int = 64             # per generation
    readouts: int = 24                   # MCTS simulations per move
    sample_moves: int = 6                # self-play: first moves drawn by visit counts
    dirichlet_alpha: float = 0.5
    noise_weight: float = 0.25
    eval_games: int = 40                 # per evaluation, an even number (colours alternate)
    eval_sample_moves: int = 2
    window_size: int = 5                 # generations of games trained on
    batch_size: int = 128
    train_steps: int = 40                # optimizer steps per generation
    lr_rates: tuple[float, ...] = (0.05, 0.02)
    lr_boundaries: tuple[int, ...] = (400,)   # step at which the next rate starts
    momentum: float = 0.9
    weight_decay: float = 1e-4
    threads: int = 0                     # torch CPU threads (0 = torch's default)


CONFIGS = {
    "mini": MinigoConfig(),
    # MLPerf v1.0/v1.1 closed minigo: 19x19 Go (the closed logs run --board_size=19), the
    # network of ml_perf/flags/19/architecture.flags (conv_width 64, fc_width 64, trunk_layers 6
    # = the closed rules' tensor list, input_features mlperf07), >= 8192 self-play games per
    # generation, a window of 5 generations; the optimizer values are those of the published
    # NVIDIA v1.0 closed logs; the exploration noise that of ml_perf/flags/19/selfplay.flags
    # (dirichlet_alpha 0.03, noise_mix 0.3) and minigo's soft-pick cutoff on 19x19
    # ((19 * 19 // 12) // 2 * 2 = 30 moves).
    "reference": MinigoConfig(board_size=19, komi=7.5, width=64, blocks=6, fc_width=64, features="mlperf07",
                              selfplay_games=8192, readouts=800, sample_moves=30,
                              dirichlet_alpha=0.03, noise_weight=0.3, eval_games=256, eval_sample_moves=6,
                              window_size=5, batch_size=4096, train_steps=100,
                              lr_rates=(0.016, 0.16, 0.016, 0.0016),
                              lr_boundaries=(128, 10000, 20000), weight_decay=1e-4),
}


def new_model(cfg: MinigoConfig) -> MiniGoNet:
    return MiniGoNet(cfg.board_size, cfg.width, cfg.blocks, cfg.fc_width, cfg.features)


class Generations:
    """Self-play and training, generation by generation (the part shared by the timed run and
    by the making of the shipped reference player)."""

    def __init__(self, cfg: MinigoConfig, seed: int, device: str = "cpu"):
        self.cfg, self.device = cfg, device
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.model = new_model(cfg).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr_rates[0],
                                         momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.window: deque = deque(maxlen=cfg.window_size)
        self.step = 0

    def new_position(self) -> Position:
        return Position(self.cfg.board_size, self.cfg.komi)

    def learning_rate(self, step: int) -> float:
        """Piecewise constant: lr_rates[i] from lr_boundaries[i-1] on (MLPerf minigo's schedule)."""
        passed = sum(1 for b in self.cfg.lr_boundaries if step >= b)
        return self.cfg.lr_rates[min(passed, len(self.cfg.lr_rates) - 1)]

    def selfplay(self) -> Iterator[int]:
        cfg = self.cfg
        self.model.eval()
        evaluate = network_evaluator(self.model, self.device)
        games = yield from play_games(cfg.selfplay_games, self.new_position, lambda g, c: evaluate,
                                      cfg.readouts, self.rng, cfg.sample_moves,
                                      noise=(cfg.dirichlet_alpha, cfg.noise_weight))
        self.window.append(training_examples(games, cfg.features))

    def train(self) -> Iterator[int]:
        cfg = self.cfg
        planes, policies, outcomes = (torch.from_numpy(np.concatenate(parts))
                                      for parts in zip(*self.window))
        self.model.train()
        for _ in range(cfg.train_steps):
            idx = torch.from_numpy(self.rng.integers(0, len(outcomes), cfg.batch_size))
            x, pi = symmetry(planes[idx], policies[idx], int(self.rng.integers(8)))
            x, pi, z = x.to(self.device), pi.to(self.device), outcomes[idx].to(self.device)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            logits, value = self.model(x)
            loss = -(pi * F.log_softmax(logits, dim=1)).sum(1).mean() + F.mse_loss(value, z)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            yield cfg.batch_size
        self.model.eval()

    def match(self, opponent: torch.nn.Module, games: int, rng: np.random.Generator) -> float:
        """Win rate of the current model against `opponent`, colours alternating."""
        self.model.eval()
        return match(network_evaluator(self.model, self.device), network_evaluator(opponent, self.device),
                     games, self.new_position, self.cfg.readouts, rng, self.cfg.eval_sample_moves)


class MinigoWorkload(Workload):
    def prepare_data(self, data_dir: Path) -> None:
        """MiniGo makes its own data by self-play; what it needs on disk is the reference player."""
        cfg = self.config
        if cfg.eval_games < 2 or cfg.eval_games % 2:
            raise MlpaceError(f"eval_games must be an even number >= 2 (colours alternate), got {cfg.eval_games}")
        self.reference_path = reference_player_path(cfg.reference_player, self.scale)

    def setup(self, ctx: RunContext) -> None:
        cfg = self.config
        self.ctx = ctx
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.reference = load_weights(self.reference_path).to(ctx.device)
        if self.reference.board_size != cfg.board_size:
            raise MlpaceError(f"reference player {self.reference_path} plays {self.reference.board_size}x"
                              f"{self.reference.board_size}, the config says {cfg.board_size}x{cfg.board_size}")
        self.generations = Generations(cfg, ctx.seed, ctx.device)
        self.model = self.generations.model
        self.eval_rng = np.random.default_rng(ctx.seed + 1_000_003)

    def hyperparameters(self) -> dict:
        cfg = self.config
        return {
            **self.batch_hyperparameters(),
            "train_batch_size": cfg.batch_size,
            "lr_rates": list(cfg.lr_rates),
            "lr_boundaries": list(cfg.lr_boundaries),
            "opt_weight_decay": cfg.weight_decay,
            "num_readouts": cfg.readouts,
            "window_size": cfg.window_size,
            "eval_games": cfg.eval_games,
            "min_selfplay_games_per_generation": cfg.selfplay_games,
            # every generation plays exactly this many games, so one line says it for all
            "actual_selfplay_games_per_generation": cfg.selfplay_games,
        }

    def initialized_tensors(self) -> list[str]:
        return mlperf_tensor_names(self.model)

    def train_samples(self) -> int:
        return self.config.selfplay_games

    def eval_samples(self) -> int:
        return self.config.eval_games

    def train_epoch(self, epoch: int) -> Iterator[int]:
        yield from self.generations.selfplay()
        yield from self.generations.train()

    def evaluate(self, epoch: int) -> float:
        return self.generations.match(self.reference, self.config.eval_games, self.eval_rng)


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps: one generation of one self-play game with one readout a
    move, two training steps and a two-game match, on one thread (an untrained 19x19 game runs
    to its 722-move limit: each position evaluated is the cost). At reference scale, on the
    19x19 reference network, against a target player in the weights format the real one comes
    in: a freshly initialised reference network (written under `root`), as the real player
    cannot be shipped."""
    tiny = {"selfplay_games": 1, "readouts": 1, "eval_games": 2, "train_steps": 2, "batch_size": 32,
            "threads": 1}
    if scale == "mini":
        return tiny
    player = Path(root) / "reference_player.json"
    with torch.random.fork_rng():           # the same player every time, the caller's seed untouched
        torch.manual_seed(7)
        save_weights(new_model(CONFIGS["reference"]), player)
    return {**tiny, "reference_player": str(player)}


def make(scale: str, overrides: dict) -> MinigoWorkload:
    config = apply_overrides(CONFIGS[scale], overrides)
    return MinigoWorkload(get_spec("minigo"), scale, config)
