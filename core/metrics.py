"""Figures derived from the artifact that more than one package reports -- the trainer's metrics, the
report and the activity record -- defined once here so they cannot disagree.

The structural numbers are the model's own (`TernaryModel.counts`, `stored_bytes`, `float32_bytes`); this
module adds what is built from them: the compression ratio, the parameter-memory summary the trainer stores,
and the connections a batch of inputs actually uses (zero weights and zero inputs skipped), per operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import TernaryModel
from .ops import Op

__all__ = ["compression", "parameter_memory", "operation_totals", "effective_inputs", "synaptic_nodes"]


def compression(model: TernaryModel, reference_bits: int = 32) -> float:
    """How many times smaller the stored parameters are than the same parameters as float32 (or float64 with
    `reference_bits=64`): `float32_bytes() * reference_bits / 32 / stored_bytes()`."""
    return model.float32_bytes() * (reference_bits / 32) / model.stored_bytes()


def parameter_memory(model: TernaryModel) -> dict[str, Any]:
    """The parameter memory of a model as the trainer's metrics record it (`metrics["memory"]`)."""
    n_w = model.num_weights()
    weight_bytes = int(sum(op.arrays(model.kind, model.bits())["weight"].nbytes for op in model.weight_layers))
    zeros = sum(op.weight.size - op.nonzero_weights() for op in model.weight_layers)
    return {"weights": n_w, "bits_per_weight": 8 * weight_bytes / n_w, "weight_bytes": weight_bytes,
            "parameter_bytes": model.stored_bytes(), "float32_bytes": model.float32_bytes(),
            "float64_bytes": 2 * model.float32_bytes(),
            "ratio_vs_float32": compression(model, 32), "ratio_vs_float64": compression(model, 64),
            "zero_fraction": zeros / n_w, "storage_bits": model.bits() if model.kind == "ternary" else 32}


def operation_totals(model: TernaryModel) -> dict[str, int]:
    """Connections per inference over the whole graph (padding excluded), and those with a non-zero weight --
    the `dense_macs` / `nonzero_weight_macs` totals of a report and `dense_macs_per_inference` of an activity
    record. `weight_*` restrict them to the operations with learned weights."""
    counts = list(zip(model.layers, model.counts(), strict=True))
    return {"connections": sum(c.connections for _, c in counts),
            "nonzero_connections": sum(c.nonzero for _, c in counts),
            "weight_connections": sum(c.connections for op, c in counts if op.has_weights),
            "weight_nonzero_connections": sum(c.nonzero for op, c in counts if op.has_weights)}


def effective_inputs(op: Op, *masks: np.ndarray) -> np.ndarray:
    """Per output element, the connections whose weight and input are both non-zero (float32 counts), from
    `masks`, 0/1 float32 arrays of the non-zero inputs (N, *in_shape); zeros for operations without
    connections (relu, flatten, affine). Each operation declares it (`Op.effective`)."""
    if not op.counts(*(m.shape[1:] for m in masks)).connections:
        return np.zeros((masks[0].shape[0], *op.out_shape(*(m.shape[1:] for m in masks))), np.float32)
    return np.asarray(op.effective(*masks), np.float32)


def synaptic_nodes(model: TernaryModel) -> list[int]:
    """Positions of the nodes that have connections (weight operations, pooling, add, concat): the entries of
    an activity record and the synapse groups of a neuromorphic mapping."""
    return [i for i, c in enumerate(model.counts()) if c.connections > 0]
