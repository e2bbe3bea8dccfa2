"""Graph rewrites of the artifact, one per module, each `apply(model) -> model` (a new model; the input is not
changed): the one home for the rewrites the tracer and the backends need, so none of them writes its own.

- `fold_affine`: an affine (a BatchNorm) whose input is a weight operation read by nothing else is folded
  into that operation's scale and bias, exact up to float32 rounding.
- `drop_identity`: nodes that compute their input unchanged (a reshape to the same shape, a whole-axis
  slice, a transpose that keeps the order) disappear.
- `chain_names`: a chain's nodes are renamed layer0, layer1, ... (the names `.tern` files of chains have).
"""

from __future__ import annotations

import copy

from ..model import Node, TernaryModel

__all__ = ["with_nodes", "rename_inputs"]


def with_nodes(model: TernaryModel, nodes: list[Node]) -> TernaryModel:
    """A shallow copy of `model` holding `nodes` (everything else shared)."""
    out = copy.copy(model)
    out.nodes = list(nodes)
    return out


def rename_inputs(node: Node, rename: dict[str, str]) -> Node:
    return Node(node.name, node.op, tuple(rename.get(i, i) for i in node.inputs))
