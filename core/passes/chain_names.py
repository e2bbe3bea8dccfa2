"""A chain keeps the names layer0, layer1, ... (the names `.tern` files of chains have always had); a graph
that is not a chain is returned as it is."""

from __future__ import annotations

from ..model import INPUT, Node, TernaryModel
from . import with_nodes

__all__ = ["apply"]


def apply(model: TernaryModel) -> TernaryModel:
    prev = INPUT
    for n in model.nodes:
        if n.inputs != (prev,):
            return model
        prev = n.name
    return with_nodes(model, [Node(f"layer{i}", n.op, (f"layer{i - 1}",) if i else (INPUT,))
                              for i, n in enumerate(model.nodes)])
