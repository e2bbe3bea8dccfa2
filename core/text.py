"""Text that came from a model, graph, target or dataset, made safe for where it goes.

Why one module: text from a stranger's file must never become code. Node names are the one kind of model text
that other formats use structurally (C comments, ONNX node names, Lava process names, report tables), so they
follow a short identifier grammar (`NAME`), checked when an artifact is built, saved and loaded. Everything
else (labels, target names, dataset specs, version strings) is free text and goes through the one escaping
function of its destination: `c_comment` for generated C, `md` for Markdown reports, `plain` for chart labels.
`cut` keeps a hostile 100,000-character value from flooding a one-line error message.
"""

from __future__ import annotations

import re

__all__ = ["NAME", "NAME_RULE", "MAX_NAME", "is_name", "to_name", "cut", "c_comment", "md", "md_code", "plain"]

MAX_NAME = 128
NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.\-]{{0,{MAX_NAME - 1}}}")
NAME_RULE = f"1 to {MAX_NAME} characters from A-Z a-z 0-9 _ . -, not starting with . or -"

_C_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:;=+-()[]<>@!&^~|{}#'")
_MD_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|$~&")


def is_name(s: object) -> bool:
    """Whether `s` is a valid node name (a str matching NAME in full)."""
    return isinstance(s, str) and NAME.fullmatch(s) is not None


def to_name(s: str) -> str:
    """A valid node name made from arbitrary text (the tracer's module paths): every other character becomes
    `_`, the result is cut to MAX_NAME characters."""
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", s)[:MAX_NAME] or "_"
    return out if out[0] not in ".-" else "_" + out[1:]


def cut(s: object, limit: int = 80) -> str:
    """`repr(s)` for a message, at most about `limit` characters: long values end in `...` and their length."""
    r = repr(s)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(str(s)):,} characters)"


def c_comment(s: object, limit: int = 400) -> str:
    """Free text as the inside of a C block comment: characters outside a small safe set (which holds no `*`,
    `/`, `\\`, `?`, `%`, quotes or control characters) are written as `%XX` per UTF-8 byte, so the comment can
    neither end, splice lines, hold a trigraph nor start another; cut to about `limit` characters."""
    out = []
    for ch in str(s)[:limit]:
        out.append(ch if ch in _C_SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    return "".join(out)


def md(s: object, limit: int = 200) -> str:
    """Free text as literal Markdown inline text: every Markdown (and HTML) special character is
    backslash-escaped, line breaks and control characters become spaces; cut to `limit` characters."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(s)[:limit])
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def md_code(s: object, limit: int = 200) -> str:
    """Free text as a Markdown code span (shown literally): backticks become `'`, table pipes `¦`, line
    breaks and control characters spaces; cut to `limit` characters."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(s)[:limit])
    return "`" + text.replace("`", "'").replace("|", "¦") + "`"


def plain(s: object, limit: int = 60) -> str:
    """Free text for a chart label: control characters removed, cut to `limit` characters. (Charts also turn
    mathtext off, so `$` is shown as it is.)"""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(s))
    return text if len(text) <= limit else text[:limit - 1] + "…"
