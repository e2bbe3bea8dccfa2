"""Operation counts per node of the graph: connections (MACs or fixed synapses), what is left after skipping
zero weights and zero inputs, and the other arithmetic each operation kind executes.

Structural counts come from the artifact (`TernaryModel.counts`: connections with padding excluded, those with
a non-zero weight), so the report, the training metrics and the activity record cannot disagree; counts on
data come from `ternkit.core.metrics.effective_inputs` over the reference activations. Terms follow
NeuroBench (Yik et al., 2025): dense MACs count every connection, effective MACs only those where weight and
input activation are both non-zero. For a ternary model each effective MAC is an add or subtract (an AC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ternkit.core import INPUT
from ternkit.core.errors import OptionError
from ternkit.core.metrics import effective_inputs
from ternkit.core.model import TernaryModel
from ternkit.core.ops import Counts, Op, handler

__all__ = ["NodeOps", "LayerOps", "count_ops", "totals", "ARITHMETIC"]


@dataclass
class NodeOps:
    """One node. Structural counts are per inference; measured ones are means over the samples."""

    index: int  # position in model.nodes (= model.layers)
    node: str
    kind: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, ...]  # of the first input
    out_shape: tuple[int, ...]
    in_elements: int  # all inputs together
    neurons: int  # output elements = neuron updates per inference
    weights: int
    nonzero_weights: int
    dense_macs: int  # connections (padding excluded): MACs of a weight operation, synapses of a fixed one
    nonzero_weight_macs: int  # connections whose weight is non-zero (zero weights skipped, all inputs)
    arithmetic: dict[str, int] = field(default_factory=dict)  # other work, by operation (see ARITHMETIC)
    measured: bool = False  # False: no data; the fields below assume every input is non-zero
    input_activation_sparsity: float = 0.0  # fraction of this node's input elements that are zero
    effective_macs: float = 0.0  # weight and input both non-zero
    messages: float = 0.0  # non-zero input elements (events a neuromorphic core receives)
    active_neurons: float = 0.0  # outputs that receive at least one effective input
    output_zero_fraction: float = 0.0  # outputs that are zero after the following ReLU (if any)

    @property
    def synaptic(self) -> bool:
        """Has connections (weight operations, pooling, add, concat): a synapse group on a neuromorphic chip."""
        return self.dense_macs > 0

    @property
    def reads_input(self) -> bool:
        return INPUT in self.inputs

    def as_dict(self) -> dict:
        d = asdict(self)
        d["in_shape"], d["out_shape"], d["inputs"] = list(self.in_shape), list(self.out_shape), list(self.inputs)
        return d


LayerOps = NodeOps  # the name before nodes replaced layers

# Per operation kind: what it executes besides its connections' MACs, as {operation: count per inference}.
# `energy.py` costs "add" and "compare" as an accumulate and "multiply" as a multiply. Counts derive from the
# artifact's own: a window (or sum) over k connections takes k - 1 adds or compares per output.
Arithmetic = Callable[[Op, Counts], dict[str, int]]


def _table(op: Op, c: Counts) -> dict[str, int]:
    return {"add": c.outputs}


def _weights(op: Op, c: Counts) -> dict[str, int]:
    return {"scale multiply": c.outputs, "bias add": c.outputs}


ARITHMETIC: dict[str, Arithmetic] = {
    "dense": _weights,
    "conv2d": _weights,
    "affine": lambda op, c: {"multiply": c.outputs, "add": c.outputs},
    "avgpool2d": lambda op, c: {"add": c.connections - c.outputs, "multiply": c.outputs},  # window sum, then /k
    "avgpool2d_exclude_pad": lambda op, c: {"add": c.connections - c.outputs, "multiply": c.outputs},
    "maxpool2d": lambda op, c: {"compare": c.connections - c.outputs},
    "add": lambda op, c: {"add": c.connections - c.outputs},
    "concat": lambda op, c: {},  # a copy: memory traffic only
    "relu": lambda op, c: {"compare": c.outputs},
    "flatten": lambda op, c: {},  # a view
    "clip": lambda op, c: {"compare": c.outputs * ((op.low is not None) + (op.high is not None))},
    "hardsigmoid": lambda op, c: {"add": c.outputs, "compare": 2 * c.outputs, "multiply": c.outputs},
    "hardswish": lambda op, c: {"add": c.outputs, "compare": 2 * c.outputs, "multiply": 2 * c.outputs},
    # exp/erf/tanh-based functions: an integer deployment reads them from a 256-entry table (the C export does):
    # one index add per output
    "sigmoid": _table, "silu": _table, "tanh": _table, "gelu": _table,
    "scale_shift": lambda op, c: {"multiply": c.outputs * (op.mul != 1.0), "add": c.outputs * (op.add != 0.0)},
    "mul": lambda op, c: {"multiply": c.outputs},
    "reshape": lambda op, c: {},  # a view
    "transpose": lambda op, c: {},  # a copy: memory traffic only
    "slice": lambda op, c: {},  # a copy: memory traffic only
}


def count_ops(model: TernaryModel, x: np.ndarray | None = None, batch_size: int = 256) -> list[NodeOps]:
    """Per-node counts; with raw samples `x` (N, *input.shape) also the measured activity."""
    shapes = model.shape_map()
    out: list[NodeOps] = []
    for i, (n, c) in enumerate(zip(model.nodes, model.counts(), strict=True)):
        ins = model.in_shapes(n, shapes)
        arith = handler(ARITHMETIC, n.op, "targets", where=f"node {n.name}")(n.op, c)
        w = int(n.op.weight.size) if n.op.has_weights else 0
        nzw = n.op.nonzero_weights() if n.op.has_weights else 0
        in_el = int(sum(np.prod(s) for s in ins))
        out.append(NodeOps(i, n.name, n.op.kind, tuple(n.inputs), tuple(ins[0]), tuple(shapes[n.name]), in_el,
                           c.outputs, w, nzw, c.connections, c.nonzero, arith, effective_macs=float(c.nonzero),
                           messages=float(in_el), active_neurons=float(c.outputs) if c.connections else 0.0))
    if x is not None:
        _measure(model, np.asarray(x, np.float32), out, batch_size)
    return out


def _measure(model: TernaryModel, x: np.ndarray, ops: list[NodeOps], batch_size: int) -> None:
    if len(x) == 0:
        raise OptionError("no samples to measure activity on")
    if x.shape[1:] != tuple(model.input.shape):
        raise OptionError(f"samples have shape {x.shape[1:]}, the model expects {tuple(model.input.shape)}")
    consumers = model.consumers()
    kinds = {n.name: n.op.kind for n in model.nodes}
    sums = np.zeros((len(ops), 5))  # zero inputs, effective, messages, active, zero outputs
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        values = {INPUT: model.input.normalise(xb)} | dict(
            zip((n.name for n in model.nodes), model.activations(xb), strict=True))
        for o, n in zip(ops, model.nodes, strict=True):
            masks = [(values[k] != 0).astype(np.float32) for k in n.inputs]
            eff = effective_inputs(n.op, *masks)
            # the output a following node sees: after a ReLU if that is its only consumer
            nxt = consumers[n.name]
            after = values[nxt[0]] if len(nxt) == 1 and kinds[nxt[0]] == "relu" else values[n.name]
            nonzero = float(sum(m.sum() for m in masks))
            sums[o.index] += [o.in_elements * len(xb) - nonzero, float(eff.sum()), nonzero,
                              float((eff > 0).sum()), float((after == 0).sum())]
    n = float(len(x))
    for o in ops:
        zin, eff, msg, act, zout = sums[o.index]
        o.measured = True
        o.input_activation_sparsity = zin / (n * o.in_elements)
        o.effective_macs, o.messages, o.active_neurons = eff / n, msg / n, act / n
        o.output_zero_fraction = zout / (n * o.neurons)


def totals(ops: list[NodeOps]) -> dict[str, float]:
    """Model totals over the nodes with connections, plus NeuroBench's connection and activation sparsity."""
    syn = [o for o in ops if o.synaptic]
    weights = sum(o.weights for o in ops)
    hidden = [o for o in syn if not o.reads_input]  # inputs that are outputs of earlier nodes (activations)
    hidden_inputs = sum(o.in_elements for o in hidden)
    arithmetic: dict[str, int] = {}
    for o in ops:
        for k, v in o.arithmetic.items():
            arithmetic[k] = arithmetic.get(k, 0) + v
    return {
        "dense_macs": sum(o.dense_macs for o in syn),
        "nonzero_weight_macs": sum(o.nonzero_weight_macs for o in syn),
        "weight_macs": sum(o.dense_macs for o in syn if o.weights),
        "effective_macs": float(sum(o.effective_macs for o in syn)),
        "neurons": sum(o.neurons for o in syn),
        "messages": float(sum(o.messages for o in syn)),
        "active_neurons": float(sum(o.active_neurons for o in syn)),
        "arithmetic": arithmetic,
        "connection_sparsity": 1.0 - sum(o.nonzero_weights for o in ops) / weights,
        # NeuroBench: zeros among the outputs of activation layers, i.e. the inputs of every node with
        # connections that does not read the model input
        "activation_sparsity": (sum(o.input_activation_sparsity * o.in_elements for o in hidden) / hidden_inputs
                                if hidden_inputs else 0.0),
        "measured": all(o.measured for o in ops),
    }
