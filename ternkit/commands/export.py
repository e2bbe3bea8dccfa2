"""`ternkit export FORMAT MODEL -o OUT [options]`: one subcommand per registered backend that exports
(`ternkit.export.backends()`), its flags made from the backend's declared export options."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from ternkit.commands import SUMMARIES
from ternkit.commands.backend_options import add_options, given


def _no_format(p: argparse.ArgumentParser, names: list[str]) -> int:
    """`ternkit export` alone: one error line on stderr naming the formats, exit 2 (as for every bad input)."""
    print(f"{p.prog}: error: choose a format: {' or '.join(names)} (e.g. `{p.prog} onnx MODEL -o OUT`)",
          file=sys.stderr)
    return 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ternkit.export import backends

    p = sub.add_parser("export", help=SUMMARIES["export"], description="Export a trained model for deployment.")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", parser_class=type(p))
    names = [b.name for b in backends().values() if b.export is not None]
    p.set_defaults(run=lambda args: _no_format(p, names))
    for b in backends().values():
        if b.export is None:
            continue
        q = fmt.add_parser(b.name, help=b.summary, description=b.description or b.summary)
        q.add_argument("model", help="a .tern artifact")
        q.add_argument("-o", "--out", required=b.out_required, help=b.out_help)
        add_options(q, b.export_options)
        q.set_defaults(run=partial(run, b.name))


def run(name: str, args: argparse.Namespace) -> int:
    from ternkit.export import export_model, get

    written = export_model(name, args.model, args.out, **given(args, get(name).export_options))
    print(written.summary)
    return 0
