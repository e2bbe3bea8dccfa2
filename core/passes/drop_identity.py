"""Remove nodes that pass their input through unchanged: a reshape to the input's own shape, a transpose
that keeps the axis order, a slice of a whole axis (what `torch.chunk(x, 1)` leaves). Readers of a removed
node read its input; the output node is kept (the graph's output is its last node)."""

from __future__ import annotations

from ..model import Node, TernaryModel
from ..ops import Reshape, Slice, Transpose
from . import rename_inputs, with_nodes

__all__ = ["apply", "is_identity"]


def is_identity(node: Node, in_shape: tuple[int, ...]) -> bool:
    op = node.op
    if isinstance(op, Reshape):
        return tuple(op.shape) == tuple(in_shape)
    if isinstance(op, Transpose):
        return tuple(op.perm) == tuple(range(len(op.perm)))
    if isinstance(op, Slice):
        return op.start == 0 and op.stop == in_shape[op.axis]
    return False


def apply(model: TernaryModel) -> TernaryModel:
    shapes = model.shape_map()
    last = model.nodes[-1].name
    rename: dict[str, str] = {}
    out: list[Node] = []
    for n in model.nodes:
        n = rename_inputs(n, rename)
        if n.name != last and len(n.inputs) == 1 and is_identity(n, shapes[n.inputs[0]]):
            rename[n.name] = n.inputs[0]
            continue
        out.append(n)
    return with_nodes(model, out)
