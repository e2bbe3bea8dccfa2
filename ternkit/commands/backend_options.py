"""Backends' declared options (`ternkit.export.backend.Option`) as argparse options. Every option defaults to
"absent" (argparse.SUPPRESS), so only what the user typed reaches the backend and its own defaults apply."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from ternkit.export.backend import Option

__all__ = ["add_options", "given"]


def add_options(p: argparse.ArgumentParser, options: Iterable[Option], extra_help: dict[str, str] | None = None
                ) -> None:
    """Add `options` to `p` (one mutually exclusive group per `Option.group`); a flag seen twice is added once
    (`ternkit simulate` holds every backend's options, and two may declare the same flag)."""
    groups: dict[str, Any] = {}
    seen: set[str] = set()
    for o in options:
        if o.flag in seen:
            continue
        seen.add(o.flag)
        if o.group and o.group not in groups:
            groups[o.group] = p.add_mutually_exclusive_group()
        where = groups[o.group] if o.group else p
        text = o.help + (extra_help or {}).get(o.flag, "")
        if o.switch:
            where.add_argument(o.flag, dest=o.dest, action="store_const", const=o.const, default=argparse.SUPPRESS,
                               help=text)
        else:
            where.add_argument(o.flag, dest=o.dest, type=o.type, choices=o.choices, metavar=o.metavar,
                               default=argparse.SUPPRESS, help=text)


def given(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """{dest: value} of the options the user gave."""
    return {o.dest: getattr(args, o.dest) for o in options if hasattr(args, o.dest)}
