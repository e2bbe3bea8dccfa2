"""Fold an affine (a BatchNorm in inference) into the weight operation that feeds it alone: the operation's
scale and bias absorb it (`WeightOp.with_affine`, exact up to float32 rounding), the affine node disappears
and its readers read the weight operation."""

from __future__ import annotations

from ..model import Node, TernaryModel
from ..ops import Affine, WeightOp
from . import rename_inputs, with_nodes

__all__ = ["apply"]


def apply(model: TernaryModel) -> TernaryModel:
    readers: dict[str, int] = {}
    for n in model.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    rename: dict[str, str] = {}
    out: list[Node] = []
    position: dict[str, int] = {}
    for n in model.nodes:
        n = rename_inputs(n, rename)
        src = out[position[n.inputs[0]]] if len(n.inputs) == 1 and n.inputs[0] in position else None
        if isinstance(n.op, Affine) and src is not None and isinstance(src.op, WeightOp) and readers[src.name] == 1:
            out[position[src.name]] = Node(src.name, src.op.with_affine(n.op.scale, n.op.bias), src.inputs)
            rename[n.name] = src.name
            continue
        position[n.name] = len(out)
        out.append(n)
    return with_nodes(model, out)
