"""The planned stack of `tk_predict`: GCC's own frame sizes (`-fstack-usage`) summed along the deepest path of
its call graph (`-fcallgraph-info=su`, the .ci file written beside model.o), both from the same compile that
makes the measured object. A frame GCC cannot bound (a variable-length array, `alloca`), a call it cannot see
into (a library function, an indirect call) or recursion leaves the stack unplanned, with the reason.

The figure is what the compiler reserved: every frame of the deepest chain of calls, its alignment padding
included. The painted-stack measure (export/mcu/harness.c) sees only the words that were written, so it can
fall short of the plan by the reserved words the deepest frame never writes (the AAPCS padding that keeps the
stack 8-byte aligned, the unused tail of a local array), never exceed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ternkit.core.text import plain

__all__ = ["StackPlan", "read_callgraph", "plan_stack", "STACK_FLAGS"]

STACK_FLAGS = ["-fstack-usage", "-fcallgraph-info=su"]  # analysis only: the object is byte-identical without them
MAX_CI_BYTES = 16 << 20  # model.c's call graph is tens of KB; a bigger .ci in a --build folder is not one
MAX_DEPTH = 256  # calls deep: tk_predict's graph is under ten; a deeper one is not model.c's
_NODE = re.compile(r'node: \{ title: "([^"]*)" label: "([^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"')
_USAGE = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")


@dataclass
class StackPlan:
    bytes: int | None  # None: unbounded (see `reason`)
    path: list[str] = field(default_factory=list)  # the deepest chain of calls, tk_predict first
    frames: list[int] = field(default_factory=list)  # each one's frame bytes
    reason: str = ""


def _name(title: str) -> str:
    """A node's function name without GCC's file prefix and clone suffix (`model.c:tk_dot.constprop.0`)."""
    return plain(re.sub(r"\.(constprop|isra|part|cold)(\.\d+)?", "", title.rsplit(":", 1)[-1]))


def read_callgraph(ci: Path) -> tuple[dict[str, tuple[int | None, str]], dict[str, list[str]]]:
    """(frame bytes and qualifier per function -- None for one GCC did not compile here --, callees per
    function) from a .ci file (VCG text)."""
    text = Path(ci).read_text(errors="replace")
    nodes: dict[str, tuple[int | None, str]] = {}
    for title, label in _NODE.findall(text):
        m = _USAGE.search(label)
        nodes[title] = (int(m.group(1)), m.group(2)) if m else (None, "")
    calls: dict[str, list[str]] = {}
    for src, dst in _EDGE.findall(text):
        if dst not in calls.setdefault(src, []):
            calls[src].append(dst)
    return nodes, calls


def plan_stack(ci: Path, root: str = "tk_predict") -> StackPlan:
    """The deepest stack of `root` and its callees: the sum of the frames on the heaviest call path."""
    if not Path(ci).is_file():
        return StackPlan(None, reason=f"the compiler wrote no call graph ({Path(ci).name}: -fcallgraph-info needs "
                                      f"GCC 10 or newer)")
    if Path(ci).stat().st_size > MAX_CI_BYTES:  # a --build folder is the user's: its .ci is read, not trusted
        return StackPlan(None, reason=f"{Path(ci).name} is over {MAX_CI_BYTES >> 20} MiB: not a call graph of model.c")
    nodes, calls = read_callgraph(ci)
    if root not in nodes:
        return StackPlan(None, reason=f"{root} is not in the call graph {Path(ci).name}")
    best: dict[str, tuple[int, list[str]]] = {}

    def deepest(fn: str, stack: tuple[str, ...]) -> tuple[int, list[str]]:
        if fn in stack:
            raise _Unbounded(f"recursion through {_name(fn)}")
        if len(stack) >= MAX_DEPTH:
            raise _Unbounded(f"a call path deeper than {MAX_DEPTH} calls: not a call graph of model.c")
        if fn in best:
            return best[fn]
        size, qual = nodes.get(fn, (None, ""))
        if size is None:
            raise _Unbounded(f"{_name(fn)} is not compiled in model.c (a library or indirect call)")
        if qual != "static":
            raise _Unbounded(f"{_name(fn)} has a {qual} frame (a variable-length array or alloca)")
        below = max((deepest(c, stack + (fn,)) for c in calls.get(fn, [])), default=(0, []))
        best[fn] = (size + below[0], [fn] + below[1])
        return best[fn]

    try:
        total, path = deepest(root, ())
    except _Unbounded as e:
        return StackPlan(None, reason=str(e))
    return StackPlan(total, [_name(f) for f in path], [nodes[f][0] or 0 for f in path])


class _Unbounded(Exception):
    pass
