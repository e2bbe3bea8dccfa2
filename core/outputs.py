"""Regression outputs in the data's units.

Why: a regression trains on standardised targets ((y - mean) / std from the training split: diabetes' targets
are 25..346, which an output bias would take thousands of steps to reach), but the deployed model must answer
in the data's units. `with_output_affine` puts y * std + mean into the artifact exactly: folded into the last
weight operation's per-channel scale and bias (integer weights untouched), or, when the last node is not a
weight operation, as a final per-output `affine` node.
"""

from __future__ import annotations

import numpy as np

from .model import Node, TernaryModel
from .ops import Affine, WeightOp

__all__ = ["with_output_affine"]


def with_output_affine(model: TernaryModel, gain: np.ndarray, shift: np.ndarray) -> TernaryModel:
    """`model` whose output is output * gain + shift (one value per output); validated."""
    gain, shift = np.asarray(gain, np.float64).reshape(-1), np.asarray(shift, np.float64).reshape(-1)
    last = model.nodes[-1]
    nodes = list(model.nodes)
    if isinstance(last.op, WeightOp) and len(model.shapes()[-1]) == 1:
        nodes[-1] = Node(last.name, last.op.with_affine(gain, shift), last.inputs)
    else:
        nodes.append(Node("output_affine", Affine(gain.astype(np.float32), shift.astype(np.float32)), (last.name,)))
    out = TernaryModel(nodes, model.input, model.labels, kind=model.kind, levels=model.levels,
                       provenance=model.provenance, metrics=model.metrics, task=model.task)
    out.validate()
    return out
