"""Operation types by name, and the per-backend handler look-up that replaces `isinstance` chains."""

from __future__ import annotations

from typing import TypeVar

from ..errors import ArtifactError, UnsupportedError

__all__ = ["OPS", "register", "op_class", "handler"]

OPS: dict[str, type] = {}
T = TypeVar("T")


def register(cls: type) -> type:
    OPS[cls.kind] = cls
    return cls


def op_class(kind: str) -> type:
    try:
        return OPS[kind]
    except (KeyError, TypeError):
        raise ArtifactError(f"unknown operation {kind!r} (this ternkit knows {', '.join(sorted(OPS))})") from None


def handler(table: dict[str, T], op: object, backend: str, where: str = "", hint: dict[str, str] | None = None) -> T:
    """The backend's handler for `op`, or UnsupportedError naming the operation (and what to use instead)."""
    kind = getattr(op, "kind", type(op).__name__)
    if kind in table:
        return table[kind]
    extra = f"; {hint[kind]}" if hint and kind in hint else ""
    at = f"{where}: " if where else ""
    raise UnsupportedError(f"{at}{backend} export does not support operation {kind!r}{extra}")
