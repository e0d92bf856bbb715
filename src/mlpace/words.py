"""Words for people: counts with the right plural ("1 run", "2 runs")."""


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count word`, with `many` (default: word + "s") unless count is exactly 1."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
