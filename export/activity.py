"""Activity records: what one inference costs in messages, synaptic operations and neuron updates, measured by a
simulation (Lava) or counted from activations (onnxruntime / numpy).

The schema -- fields, version, the writer `record` -- is declared once in `ternkit.core.activity_schema`
(`ternkit report` reads it through the same module); this module fills it in. Counts come from the artifact:
dense MACs are `model.counts()` (padding excluded), synaptic operations per sample are
`ternkit.core.metrics.effective_inputs` (connections whose weight and input are both non-zero), so a record,
the report and the training metrics agree on the same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core import INPUT
from ternkit.core.activity_schema import entry, record
from ternkit.core.metrics import effective_inputs, operation_totals
from ternkit.core.model import TernaryModel
from ternkit.core.ops.conv2d import conv_fan_out

__all__ = ["conv_fan_out", "activity_record", "activations_activity", "dense_macs"]

activity_record = record  # the record writer (keyword arguments: see core.activity_schema.record)


def dense_macs(model: TernaryModel) -> int:
    """Connections per inference (padding excluded): the model's own count."""
    return operation_totals(model)["connections"]


def activations_activity(model: TernaryModel, x_raw: np.ndarray, batch_size: int = 256
                         ) -> tuple[list[dict[str, Any]], int]:
    """Per node with connections, the activity of a frame-based (one pass per inference) run from the
    reference activations: messages = non-zero inputs, synaptic ops = connections whose weight and input are
    both non-zero, neuron updates = outputs. Returns (entries, dense MACs per inference)."""
    x_raw = np.asarray(x_raw, np.float32)
    n = len(x_raw)
    shapes, counts = model.shape_map(), model.counts()
    rows = [i for i, c in enumerate(counts) if c.connections]
    sums = np.zeros((len(model.nodes), 2))  # non-zero inputs, synaptic ops
    for s in range(0, n, batch_size):
        xb = x_raw[s:s + batch_size]
        values = {INPUT: model.input.normalise(xb)} | dict(
            zip((nd.name for nd in model.nodes), model.activations(xb), strict=True))
        for i in rows:
            nd = model.nodes[i]
            masks = [(values[k] != 0).astype(np.float32) for k in nd.inputs]
            sums[i] += [sum(float(m.sum()) for m in masks), float(effective_inputs(nd.op, *masks).sum())]
    entries = []
    for i in rows:
        nd, c = model.nodes[i], counts[i]
        slots = int(sum(np.prod(shapes[k]) for k in nd.inputs))
        per = sums[i, 0] / n
        entries.append(entry(i, nd.op.kind, neurons=c.outputs, fan_out=c.nonzero / slots, messages=per,
                             synaptic_ops=sums[i, 1] / n, neuron_updates=c.outputs,
                             input_activation_sparsity=1 - per / slots, node=nd.name,
                             connections=c.connections, nonzero_connections=c.nonzero))
    return entries, dense_macs(model)
