"""Monte Carlo tree search with a policy-value network (AlphaGo Zero / MiniGo PUCT), run for
many games at once so that every simulation round is one batched network call.

`play_games` is a generator: it yields once per move round (so the harness can stop a run
between rounds) and returns the finished games through StopIteration (`yield from`).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch

from mlpace.benchmarks.minigo.go import BLACK, Position
from mlpace.benchmarks.minigo.data import GameRecord, features
from mlpace.benchmarks.minigo.model import search_network

# positions -> (move priors [B, A] over legal moves, values [B] for the player to play)
Evaluator = Callable[[list[Position]], tuple[np.ndarray, np.ndarray]]


def network_evaluator(model: torch.nn.Module, device: str = "cpu") -> Evaluator:
    """The evaluator of `model` as it stands now (its weights are snapshot, batch norms folded)."""
    network, feature_set = search_network(model), model.feature_set

    @torch.inference_mode()
    def evaluate(positions: list[Position]) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(features(positions, feature_set)).to(device)
        logits, values = network(x)
        legal = torch.from_numpy(np.array([p.legal_moves() for p in positions])).to(device)
        priors = torch.softmax(logits.float().masked_fill(~legal, -1e9), dim=1)
        return priors.cpu().numpy(), values.float().cpu().numpy()
    return evaluate


class Node:
    __slots__ = ("position", "prior", "visits", "value_sum", "mean_value", "total_visits",
                 "children", "legal", "illegal_penalty", "terminal")

    def __init__(self, position: Position):
        self.position = position
        self.prior: np.ndarray | None = None     # set when the node is expanded
        self.children: dict[int, Node] = {}
        self.terminal = position.is_game_over()

    def expand(self, prior: np.ndarray) -> None:
        self.legal = np.array(self.position.legal_moves())
        self.prior = prior.astype(np.float64)
        self.illegal_penalty = np.where(self.legal, 0.0, -np.inf)
        self.visits = np.zeros(len(prior))
        self.value_sum = np.zeros(len(prior))      # from the point of view of the player to play here
        self.mean_value = np.zeros(len(prior))     # value_sum / visits, 0 where unvisited
        self.total_visits = 0

    def select(self, c_puct: float) -> int:
        u = c_puct * self.prior * math.sqrt(self.total_visits + 1) / (1 + self.visits)
        return int(np.argmax(self.mean_value + u + self.illegal_penalty))

    def record(self, move: int, value: float) -> None:
        self.visits[move] += 1
        self.value_sum[move] += value
        self.mean_value[move] = self.value_sum[move] / self.visits[move]
        self.total_visits += 1

    def terminal_value(self) -> float:
        """+1 when the player to play here has won the finished game, else -1."""
        return 1.0 if self.position.winner() == self.position.to_play else -1.0


def search(roots: list[Node], evaluate: Evaluator, readouts: int, c_puct: float = 1.5,
           noise: tuple[float, float] | None = None, rng: np.random.Generator | None = None) -> None:
    """Run `readouts` simulations from every root; roots are expanded first (with Dirichlet
    `noise = (alpha, weight)` mixed into their priors, for self-play exploration)."""
    fresh = [r for r in roots if r.prior is None]
    if fresh:
        priors, _ = evaluate([r.position for r in fresh])
        for r, p in zip(fresh, priors):
            r.expand(p)
    if noise is not None:
        alpha, weight = noise
        for r in roots:
            dirichlet = rng.dirichlet([alpha] * int(r.legal.sum()))
            mixed = r.prior.copy()
            mixed[r.legal] = (1 - weight) * r.prior[r.legal] + weight * dirichlet
            r.prior = mixed
    for _ in range(readouts):
        pending: list[tuple[list[tuple[Node, int]], Node]] = []
        for root in roots:
            node, path = root, []
            while node.prior is not None and not node.terminal:
                move = node.select(c_puct)
                path.append((node, move))
                child = node.children.get(move)
                if child is None:
                    child = node.children[move] = Node(node.position.play(move))
                node = child
            if node.terminal:
                _backup(path, node.terminal_value())
            else:
                pending.append((path, node))
        if pending:
            priors, values = evaluate([leaf.position for _, leaf in pending])
            for (path, leaf), prior, value in zip(pending, priors, values):
                leaf.expand(prior)
                _backup(path, float(value))


def _backup(path: list[tuple[Node, int]], leaf_value: float) -> None:
    """Credit the leaf's value up the path, flipping sign at every ply."""
    value = leaf_value
    for node, move in reversed(path):
        value = -value      # the parent is the other player
        node.record(move, value)


def play_games(n_games: int, new_position: Callable[[], Position],
               player: Callable[[int, int], Evaluator], readouts: int,
               rng: np.random.Generator, sample_moves: int, noise: tuple[float, float] | None = None,
               ) -> Iterator[int]:
    """Play `n_games` games at once; `player(game, colour)` is the evaluator that plays that
    colour in that game (the same one for both colours in self-play). The first `sample_moves` moves of a game are drawn in proportion
    to visit counts, later ones are the most visited move. Yields 0 per move round; returns
    the list of GameRecord."""
    games = [GameRecord() for _ in range(n_games)]
    positions = [new_position() for _ in range(n_games)]
    while True:
        active = [i for i, p in enumerate(positions) if not p.is_game_over()]
        if not active:
            break
        groups: dict[int, tuple[Evaluator, list[int]]] = {}
        for i in active:     # one batched search per evaluator
            evaluate = player(i, positions[i].to_play)
            groups.setdefault(id(evaluate), (evaluate, []))[1].append(i)
        for evaluate, members in groups.values():
            roots = [Node(positions[i]) for i in members]
            search(roots, evaluate, readouts, noise=noise, rng=rng)
            for i, root in zip(members, roots):
                share = root.visits / root.visits.sum()
                if positions[i].moves < sample_moves:
                    move = int(rng.choice(len(share), p=share))
                else:
                    move = int(np.argmax(root.visits))
                games[i].positions.append(positions[i])
                games[i].search_policies.append(share.astype(np.float32))
                positions[i] = positions[i].play(move)
        yield 0
    for game, final in zip(games, positions):
        game.final, game.winner = final, final.winner()
    return games


def match(candidate: Evaluator, reference: Evaluator, games: int, new_position: Callable[[], Position],
          readouts: int, rng: np.random.Generator, sample_moves: int) -> float:
    """The candidate's win rate over `games` games against the reference, colours alternating."""
    player = lambda g, colour: candidate if colour == colour_of(g) else reference  # noqa: E731
    gen = play_games(games, new_position, player, readouts, rng, sample_moves)
    try:
        while True:
            next(gen)
    except StopIteration as done:
        records = done.value
    wins = sum(1 for g, record in enumerate(records) if record.winner == colour_of(g))
    return wins / games


def colour_of(game: int) -> int:
    """In a match, the candidate plays Black in even-numbered games and White in odd ones."""
    return BLACK if game % 2 == 0 else -BLACK
