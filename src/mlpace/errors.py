"""The one exception type that reaches a person.

Library code raises `MlpaceError` with a message written for a person (what is wrong and
what to do); the CLI prints it as a single `error:` line and exits non-zero. Anything else
that escapes is a bug in mlpace.
"""


class MlpaceError(Exception):
    """A problem with the user's input or environment, explained in one line.

    `details`: when the problem is a list (every incomplete result of a tree), the items, which
    the CLI prints one a line below the short `error:` line."""

    exit_code = 2

    def __init__(self, message: str = "", details: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.details = tuple(details)
