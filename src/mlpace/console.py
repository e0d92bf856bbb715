"""The one way mlpace makes a rich console: full-width tables also when piped or captured."""

from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 160  # rich's default of 80 columns wraps every table when output is not a terminal


def make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console
