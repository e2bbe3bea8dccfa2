"""`ternkit export onnx|lava`: one parent command, each format's options in its own module."""

from __future__ import annotations

import argparse
import importlib

from ternkit.commands import SUMMARIES

FORMATS = ("onnx", "lava")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=SUMMARIES["export"],
                       description="Export a trained model for deployment.")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", parser_class=type(p))
    p.set_defaults(run=lambda args: p.print_help() or 2)
    for name in FORMATS:
        importlib.import_module(f"ternkit.commands.export_{name}").add_parser(fmt)
