"""The one exception type that reaches a person.

Library code raises `MlpaceError` with a message written for a person (what is wrong and
what to do); the CLI prints it as a single `error:` line and exits non-zero. Anything else
that escapes is a bug in mlpace.
"""


class MlpaceError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2
