"""Reinforcement learning: MiniGo (19x19 Go, reference) and MiniGo-mini (5x5 Go, shipped reference player)."""

SCALES = ("mini", "reference")


def tiny_config(scale: str, root):
    """Overrides for a few steps on tiny generated data (at reference scale, a target player
    written under `root`): `mlpace validate`'s smoke run."""
    from mlpace.benchmarks.minigo.workload import tiny_config as config
    return config(scale, root)
