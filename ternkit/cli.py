"""The `ternkit` command: parse, dispatch to one module per subcommand, map errors to exit codes.

Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ternkit.commands import SUMMARIES
from ternkit.core.errors import TernkitError
from ternkit.core.version import ternkit_version

# subcommand name -> module in ternkit.commands exposing `add_parser(subparsers)` and `run(args) -> int`
COMMANDS = tuple(SUMMARIES)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser of `command` (every command's when None); the others only by name and summary, so
    `ternkit --help` or `ternkit eval ...` need not import the commands that load torch."""
    parser = _Parser(prog="ternkit", description="Train ternary neural networks and deploy them "
                     "(ONNX, Lava, C for microcontrollers) with memory and energy reports.")
    parser.add_argument("--version", action="version", version=f"ternkit {ternkit_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        if command is None or name == command:
            importlib.import_module(f"ternkit.commands.{name.replace('-', '_')}").add_parser(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser



def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the top level takes no option values, so the first word that is not an option names the command
    parser = build_parser(next((a for a in argv if not a.startswith("-")), ""))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (2) and --help/--version (0) end here, as return codes
        return int(e.code or 0)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.run(args) or 0)
    except TernkitError as e:
        print(f"ternkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ternkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def entry() -> None:
    """The `ternkit` command (and `python -m ternkit`): main(), then the exit. After a Ctrl-C the process exits
    with 130 without the interpreter's finalisation: CPython remembers a KeyboardInterrupt that reached code run
    by an extension's PyRun_* call even when ternkit caught it, and would then end the process by SIGINT (-2)
    instead of 130. Every write is atomic and already finished or removed by then; only stdio needs a flush."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
