"""Make the reference player that mini MiniGo is measured against, deterministically.

    python -m mlpace.benchmarks.minigo.reference [OUT.json]

It is the mini network after `GENERATIONS` generations of the mini recipe (self-play and
training, no evaluation) from seed `SEED`, on one thread: a fixed, moderately trained player,
the way MLPerf's target is a fixed trained checkpoint. The result is shipped as
reference_player.json; rerun this only when the mini recipe changes (it takes a few minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mlpace.benchmarks.minigo.model import save_weights
from mlpace.benchmarks.minigo.data import SHIPPED_REFERENCE
from mlpace.benchmarks.minigo.workload import CONFIGS, Generations

SEED = 20211
GENERATIONS = 10


def make_reference_player(out: Path, generations: int = GENERATIONS, seed: int = SEED) -> None:
    torch.set_num_threads(1)   # one thread: the same weights on every machine we know of
    run = Generations(CONFIGS["mini"], seed)
    for generation in range(1, generations + 1):
        for _ in run.selfplay():
            pass
        for _ in run.train():
            pass
        print(f"generation {generation}: {run.step} steps", flush=True)
    save_weights(run.model, out)


if __name__ == "__main__":
    make_reference_player(Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED_REFERENCE)
