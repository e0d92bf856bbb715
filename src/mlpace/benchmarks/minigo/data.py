"""MiniGo's data: what the network reads and learns from, and the reference player it is
measured against.

MiniGo has no data set on disk: its training data are its own self-play games (played by
`mlpace.benchmarks.minigo.mcts.play_games`), kept as `GameRecord`s and turned into training
examples (`training_examples`: input planes, MCTS visit shares, game outcomes), augmented by
the 8 board symmetries (`symmetry`). The input planes (`features`) are the same for search and
training. What it reads from disk is the reference player's weights (`reference_player_path`):
a file the user passes, or at mini scale the player mlpace ships (reference_player.json, made
by `python -m mlpace.benchmarks.minigo.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlpace.benchmarks.minigo.go import BLACK, HISTORY, Position, neighbours
from mlpace.errors import MlpaceError

SHIPPED_REFERENCE = Path(__file__).with_name("reference_player.json")

# Input feature sets: planes per position, from the point of view of the player to play.
#   basic     3 planes: my stones, the opponent's stones, "black to play" (the mini network)
#   mlperf07 13 planes: MLPerf's closed set (minigo's features.py / cc/model/features.h,
#             `--input_features=mlperf07`): my and the opponent's stones in this position and
#             the 3 before it (8; zeros where the game is younger), "black to play" (1), stones
#             whose group has 1, 2 or >= 3 liberties (3), legal points that capture (1)
FEATURE_PLANES = {"basic": 3, "mlperf07": 13}


def features(positions: list[Position], feature_set: str = "basic") -> np.ndarray:
    """Input planes [B, FEATURE_PLANES[feature_set], size, size]."""
    size = positions[0].size
    boards = np.array([p.board for p in positions], dtype=np.int8).reshape(-1, size, size)
    me = np.array([p.to_play for p in positions], dtype=np.int8)[:, None, None]
    out = np.zeros((len(positions), FEATURE_PLANES[feature_set], size, size), dtype=np.float32)
    if feature_set == "basic":
        out[:, 0] = boards == me
        out[:, 1] = boards == -me
        out[:, 2] = me == BLACK
        return out
    for i, p in enumerate(positions):
        for t, board in enumerate((p.board,) + p.history[:HISTORY]):
            b = np.array(board, dtype=np.int8).reshape(size, size)
            out[i, 2 * t] = b == p.to_play
            out[i, 2 * t + 1] = b == -p.to_play
        libs = np.array(p.liberties()).reshape(size, size)
        out[i, 9], out[i, 10], out[i, 11] = libs == 1, libs == 2, libs >= 3
        out[i, 12] = np.array(would_capture(p)).reshape(size, size)
    out[:, 8] = me == BLACK
    return out


def would_capture(position: Position) -> list[bool]:
    """Per point: a legal move there captures (it takes the last liberty of an opponent group)."""
    board, libs, legal = position.board, position.liberties(), position.legal_moves()
    nbrs = neighbours(position.size)
    return [legal[p] and any(board[n] == -position.to_play and libs[n] == 1 for n in nbrs[p])
            for p in range(len(board))]


def symmetry(planes: torch.Tensor, policy: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one of the 8 board symmetries (k in 0..7) to a batch of planes and move targets."""
    n, _, size, _ = planes.shape
    points = policy[:, :size * size].reshape(n, 1, size, size)

    def transform(x):
        x = torch.rot90(x, k % 4, dims=(2, 3))
        return torch.flip(x, dims=(3,)) if k >= 4 else x
    points = transform(points).reshape(n, size * size)
    return transform(planes), torch.cat([points, policy[:, size * size:]], dim=1)


@dataclass
class GameRecord:
    positions: list[Position] = field(default_factory=list)
    search_policies: list[np.ndarray] = field(default_factory=list)  # visit shares per position
    winner: int = 0                                                # BLACK or WHITE
    final: Position | None = None


def training_examples(games: list[GameRecord], feature_set: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(planes, search policies, outcomes for the player to play) of every position played."""
    positions = [p for g in games for p in g.positions]
    policies = np.stack([pi for g in games for pi in g.search_policies])
    outcomes = np.array([1.0 if g.winner == p.to_play else -1.0 for g in games for p in g.positions],
                        dtype=np.float32)
    return features(positions, feature_set), policies, outcomes


def reference_player_path(reference_player: str, scale: str) -> Path:
    """The reference player's weights file: `reference_player` (the config's), else at mini
    scale the shipped one; one clear error when there is none."""
    if reference_player:
        path = Path(reference_player).expanduser()
    elif scale == "mini":
        path = SHIPPED_REFERENCE
    else:
        raise MlpaceError("the reference minigo needs the target player's weights: "
                          "pass --set reference_player=/path/to/player.json")
    if not path.is_file():
        raise MlpaceError(f"minigo reference player not found at {path}")
    return path
