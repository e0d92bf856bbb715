"""Thin command-line front end: parse arguments, call a library function, print.

Each area of mlpace adds its verbs from its own module under `mlpace.commands`; every verb
is a plain function in the library, so the CLI holds no logic of its own. Command modules
import nothing heavy at module level, so `mlpace --help` and the file-reading verbs start
fast on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mlpace import __version__
from mlpace.errors import MlpaceError
from mlpace.io import printable

# One explicit list: the modules that contribute sub-commands, in help order.
COMMAND_MODULES = [
    "mlpace.commands.train",       # list, train, validate, suite
    "mlpace.commands.infer",       # infer
    "mlpace.commands.submission",  # sysinfo, package, check, summarize
    "mlpace.commands.store",       # import, results, report, compare
]


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors in the house style: one line `error: ...`, exit 2
    (argparse prints the whole usage first, and echoes a bad value's control characters)."""

    def error(self, message: str):
        print(f"error: {printable(message)} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mlpace",
        description="MLPerf-style benchmarks: train to a quality target, serve under LoadGen, "
        "package, check, score and compare results.",
    )
    parser.add_argument("--version", action="version", version=f"mlpace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _check_working_folder() -> None:
    """Relative paths (the default --out, a --db file name) and `sysinfo`'s disk all start
    from the working folder; one that was deleted under the shell fails them with a traceback."""
    import os
    try:
        os.getcwd()
    except FileNotFoundError:
        raise MlpaceError("the current folder no longer exists (it was deleted or moved); "
                          "cd into an existing folder and run the command again") from None


def main(argv: list[str] | None = None) -> int:
    try:
        _check_working_folder()
        parser = build_parser()      # imports every command module: Ctrl-C may land here too
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except MlpaceError as err:
        print(f"error: {printable(err)}", file=sys.stderr)   # one line, whatever a name held
        for line in err.details:   # a list of problems: one a line, below its short summary
            print(f"  {printable(line)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mlpace summarize ... | head`
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
