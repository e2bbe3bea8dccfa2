"""`ternkit export onnx|lava`: one parent command, each format's options in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from ternkit.commands import SUMMARIES

FORMATS = ("onnx", "lava", "c")


def _no_format(p: argparse.ArgumentParser) -> int:
    """`ternkit export` alone: usage and one error line on stderr, exit 2 (as argparse does for usage errors)."""
    p.print_usage(sys.stderr)
    print(f"{p.prog}: error: choose a format: {' or '.join(FORMATS)}", file=sys.stderr)
    return 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=SUMMARIES["export"],
                       description="Export a trained model for deployment.")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", parser_class=type(p))
    p.set_defaults(run=lambda args: _no_format(p))
    for name in FORMATS:
        importlib.import_module(f"ternkit.commands.export_{name}").add_parser(fmt)
