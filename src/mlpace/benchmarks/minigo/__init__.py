"""Reinforcement learning: MiniGo (19x19 Go, reference) and MiniGo-mini (5x5 Go, shipped reference player)."""

SCALES = ("mini", "reference")
