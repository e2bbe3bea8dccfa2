"""A ternkit model as a rate-coded spiking graph in NIR's terms (`SpikingGraph`), without the `nir` package.

The graph is held in ternkit's own small form -- NIR primitive names, their parameters as numpy arrays, edges
-- so that building, calibration and the numpy simulator run where `nir` is not installed; `nirfile.py`
turns it into a `nir.NIRGraph` one node to one node.

Rate coding. The normalised sample is a constant input current at every step; every ReLU becomes a population
of NIR IF neurons (r = 1, v_reset = 0, spike when v > v_threshold); the output is the last layer's spike count
over T steps. A population `l` has two calibrated numbers in real (model) units: its threshold theta_l and the
value lambda_l one of its spikes stands for (with reset to zero the residual above the threshold is lost, so
lambda_l is fitted, not assumed equal to theta_l). Every signal in the graph carries its *unit*: the real value
of one unit of the signal (1 for the input current, lambda_l for spikes, lambda_l / window for a sum pool,
per output channel a * unit for an integer-weight layer). A weight operation y = a*q*x + b reading a signal of
unit u becomes Affine/Conv2d with weight a*q and bias b / u (output unit u), or with `integer_weights` weight q
and bias b / (a*u) (output unit a*u per channel); a neuron reading a signal of unit u gets the threshold
theta / u. So the integer weights and the scales stay exact and only thresholds and biases change.

One handler per operation kind (`HANDLERS`, looked up with `core.ops.handler`): dense and conv2d as above;
relu -> IF; avgpool2d -> SumPool2d (the 1 / window goes into the unit: no Scale node, which Norse and Sinabs
drop); flatten -> Flatten; add -> edges into one node (NIR sums a node's inputs), with a Scale on an input
whose unit differs; affine -> folded into the weight operation it follows when nothing else reads it, else a
Scale (the gain) with the shift carried into the next weight operation's bias. NIR has no maximum and no
concatenation: maxpool2d and concat are refused with a hint.

Readout: the output layer gets COPIES neurons per class with thresholds staggered over [theta, (1 + SPREAD)
theta), summed per class by a last Affine; the prediction is the class with the most spikes. One neuron per
class fires every floor(theta / z) + 1 steps, too coarse to separate close classes at small T; staggered
thresholds quantise on different grids (a small average-pooling CNN on 2,000 MNIST test images, T = 32:
94.6 -> 96.5 % agreement with 8 copies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ternkit.core.errors import ArtifactError, UnsupportedError
from ternkit.core.model import INPUT, Node, TernaryModel
from ternkit.core.ops import handler
from ternkit.core.ops.conv2d import expand_groups

__all__ = ["NirNode", "SpikingGraph", "Neuron", "build_graph", "HANDLERS", "HINTS", "ENCODING"]

Shape = tuple[int, ...]
COPIES, SPREAD = 8, 1.0  # output neurons per class and the spread of their thresholds (see build_graph)
ENCODING = ("rate: the normalised sample (x - mean) / std is a constant input current at every one of the "
            "timesteps; the prediction is the output population's spike count (argmax)")


@dataclass(eq=False)
class NirNode:
    """One NIR primitive: `kind` is its NIR class name (Input, Output, Affine, Conv2d, SumPool2d, Scale,
    Flatten, IF), `params` its fields; `shape` is its output shape (no batch dimension)."""

    kind: str
    params: dict[str, Any]
    shape: Shape
    origin: int | None = None  # index of the model node it serves (activity entries)


@dataclass
class Neuron:
    """Calibrated numbers of one IF population, in real units: threshold and value of a spike."""

    theta: float
    value: float


@dataclass
class SpikingGraph:
    nodes: dict[str, NirNode]  # topological order; "input" first, "output" last
    edges: list[tuple[str, str]]
    neurons: dict[str, str]  # IF node name -> the model node whose activation it approximates
    joins: dict[int, list[str]] = field(default_factory=dict)  # model add node -> the NIR nodes it sums
    metadata: dict[str, Any] = field(default_factory=dict)

    def inputs_of(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    @property
    def output_neuron(self) -> str:
        """The output population (IF); with copies, the Affine after it sums them per class."""
        (src,) = self.inputs_of("output")
        return src if self.nodes[src].kind == "IF" else self.inputs_of(src)[0]

    @property
    def copies(self) -> int:
        return int(self.nodes[self.output_neuron].shape[0]) // int(self.nodes["output"].shape[0])


@dataclass
class Value:
    """A signal: the sum of the outputs of `sources` (NIR sums a node's inputs), times `unit` per channel."""

    sources: list[str]
    shape: Shape
    unit: np.ndarray  # float64, one per channel (first axis of `shape`)
    pending: str | None = None  # the weight node this is the unread output of (affine folding)
    shift: np.ndarray | None = None  # a constant added to the signal, real units, per element


@dataclass
class _Ctx:
    model: TernaryModel
    params: dict[str, Neuron]
    integer: bool
    shapes: dict[str, Shape]
    consumers: dict[str, list[str]]
    graph: SpikingGraph
    index: dict[str, int]

    def add(self, name: str, node: NirNode, inputs: list[str]) -> str:
        name = _unique(name, self.graph.nodes)
        self.graph.nodes[name] = node
        self.graph.edges += [(i, name) for i in inputs]
        return name

    def neuron(self, v: Value, node: Node, name: str, stagger: np.ndarray | None = None) -> Value:
        """IF neurons summing `v`: threshold theta / unit per channel (times `stagger` per neuron); spikes of
        value lambda."""
        _no_shift(v, node)
        if np.any(v.unit <= 0):
            raise UnsupportedError(f"node {node.name} ({node.op.kind}): a neuron reads a signal of negative scale; "
                                   "export without --integer-weights")
        p = self.params.get(name) or Neuron(1.0, 1.0)
        thr = _per_element(p.theta / v.unit, v.shape) * (1 if stagger is None else stagger)
        n = NirNode("IF", {"r": np.ones(v.shape, np.float32), "v_threshold": thr.astype(np.float32),
                           "v_reset": np.zeros(v.shape, np.float32)}, v.shape, self.index.get(node.name))
        out = self.add(name, n, v.sources)
        self.graph.neurons[out] = node.name
        return Value([out], v.shape, np.full(v.shape[0], p.value, np.float64))


def _unique(name: str, taken: dict[str, Any]) -> str:
    base, k = name, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _per_element(per_channel: np.ndarray, shape: Shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(per_channel, np.float64).reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def _square(w: np.ndarray, padding: tuple[int, int], node: Node) -> tuple[np.ndarray, tuple[int, int]]:
    """A rectangular kernel as the equal square one (zero taps on both sides, padding grown to match): nir 1.0.8
    types a Conv2d's output with weight.shape[2] for both axes, so `nir.read` refuses rectangular kernels."""
    kh, kw = w.shape[2:]
    if kh == kw:
        return w, padding
    if (kh - kw) % 2:
        raise UnsupportedError(f"node {node.name} (conv2d): NIR readers (nir 1.0.8) mis-type rectangular kernels and "
                               f"{kh}x{kw} cannot be padded to a square one; use kernels whose sides differ by an "
                               "even number")
    d = abs(kh - kw) // 2
    if kh > kw:
        return np.pad(w, ((0, 0), (0, 0), (0, 0), (d, d))), (padding[0], padding[1] + d)
    return np.pad(w, ((0, 0), (0, 0), (d, d), (0, 0))), (padding[0] + d, padding[1])


def _shift_through(op, v: Value) -> np.ndarray:
    """What a weight operation makes of its input's constant part `v.shift` (real units): a bias, per channel."""
    if v.shift is None:
        return np.zeros(op.out_channels)
    import dataclasses

    zero = dataclasses.replace(op, bias=np.zeros_like(op.bias))
    y = zero.forward(np.asarray(v.shift, np.float32)[None])[0].astype(np.float64)
    if y.ndim == 3:
        if not np.allclose(y, y.mean((1, 2), keepdims=True), rtol=1e-6, atol=1e-7):
            raise UnsupportedError("a per-channel shift before a padded convolution is not constant over the image "
                                   "and cannot become its bias; fold the affine into the convolution instead")
        y = y.mean((1, 2))
    return y


def _no_shift(v: Value, node: Node) -> None:
    if v.shift is not None and np.any(v.shift != 0):
        raise UnsupportedError(f"node {node.name} ({node.op.kind}): NIR neurons have no bias, so an affine shift "
                               "cannot reach them without a weight operation in between; fold it into one")


def _scalar_unit(v: Value, node: Node) -> float:
    u = v.unit.reshape(-1)
    if not np.all(u == u[0]):
        raise UnsupportedError(f"node {node.name} ({node.op.kind}): with --integer-weights a weight operation must "
                               "read neurons (a ReLU) or the input, not another weight operation's output")
    return float(u[0])


# ---------------------------------------------------------------------------------------------- handlers
def _weights(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, (v,) = node.op, ins
    u = _scalar_unit(v, node)
    a = op.channel_scale().astype(np.float64)
    out = ctx.shapes[node.name]
    if ctx.integer:
        w, unit = op.weight.astype(np.float32), a * u
    else:
        w, unit = (op.weight.astype(np.float64) * a.reshape((-1,) + (1,) * (op.weight.ndim - 1))).astype(
            np.float32), np.full(len(a), u)
    bias = (op.bias.astype(np.float64) / unit).astype(np.float32)
    bias = bias + (_shift_through(op, v) / unit).astype(np.float32)
    if op.kind == "conv2d":
        if len(v.shape) != 3:
            raise UnsupportedError(f"node {node.name}: a convolution of a flattened value cannot be mapped to NIR")
        w, padding = _square(expand_groups(w, int(op.groups)), tuple(op.padding), node)
        params = {"input_shape": np.asarray(v.shape[1:], np.int64), "weight": w,
                  "stride": np.asarray(op.stride, np.int64), "padding": np.asarray(padding, np.int64),
                  "dilation": np.ones(2, np.int64), "groups": 1, "bias": bias}
        kind = "Conv2d"
    else:
        if len(v.shape) != 1:
            raise UnsupportedError(f"node {node.name}: a dense layer reads a vector; flatten first")
        params, kind = {"weight": w, "bias": bias}, "Affine"
    name = ctx.add(node.name, NirNode(kind, params, out, ctx.index[node.name]), v.sources)
    return Value([name], out, unit, pending=name)


def _relu(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    (v,) = ins
    if len(v.sources) == 1 and ctx.graph.nodes[v.sources[0]].kind == "IF" and v.shift is None:
        return v  # spikes are never negative
    return ctx.neuron(v, node, node.name)


def _avgpool(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, (v,) = node.op, ins
    out = ctx.shapes[node.name]
    params = {"kernel_size": np.asarray(op.kernel, np.int64), "stride": np.asarray(op.stride, np.int64),
              "padding": np.asarray(op.padding, np.int64)}
    name = ctx.add(node.name, NirNode("SumPool2d", params, out, ctx.index[node.name]), v.sources)
    shift = None if v.shift is None else op.forward(np.asarray(v.shift, np.float32)[None])[0]
    return Value([name], out, v.unit / (op.kernel[0] * op.kernel[1]), shift=shift)


def _flatten(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    (v,) = ins
    out = ctx.shapes[node.name]
    params = {"input_type": {"input": np.asarray(v.shape, np.int64)}, "start_dim": 0, "end_dim": -1}
    name = ctx.add(node.name, NirNode("Flatten", params, out), v.sources)
    return Value([name], out, _per_element(v.unit, v.shape).reshape(-1).copy(),
                 shift=None if v.shift is None else np.asarray(v.shift).reshape(-1))


def _add(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    ref = ins[0].unit
    sources: list[str] = []
    for k, v in enumerate(ins):
        if np.array_equal(v.unit, ref):
            sources += v.sources
            continue
        scale = _per_element(v.unit / ref, v.shape).astype(np.float32)
        sources.append(ctx.add(f"{node.name}_scale{k}", NirNode("Scale", {"scale": scale}, v.shape,
                                                                ctx.index[node.name]), v.sources))
    ctx.graph.joins[ctx.index[node.name]] = list(sources)
    shifts = [v.shift for v in ins if v.shift is not None]
    return Value(sources, ctx.shapes[node.name], ref.copy(), shift=sum(shifts) if shifts else None)


def _affine(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, (v,) = node.op, ins
    gain, shift = op.scale.astype(np.float64), op.bias.astype(np.float64)
    out = ctx.shapes[node.name]
    src = v.pending
    if src is not None and ctx.consumers.get(node.inputs[0]) == [node.name] and (
            not ctx.integer or bool(np.all(gain > 0))):
        n = ctx.graph.nodes[src]  # y * g + h of the weight node's output y (real = unit * y)
        w = n.params["weight"].astype(np.float64)
        if ctx.integer:  # the gain goes into the unit: the weights stay integers
            unit = v.unit * gain
        else:
            n.params["weight"] = (w * gain.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
            unit = v.unit
        n.params["bias"] = ((n.params["bias"].astype(np.float64) * v.unit * gain + shift) / unit).astype(np.float32)
        return Value(v.sources, out, unit, pending=src)
    # after neurons, a pool or an add: the gain is a Scale node, the shift travels on to the next weight
    # operation's bias (a neuron reached by it is refused: NIR neurons have no bias)
    g = _per_element(gain, out)
    name = ctx.add(node.name, NirNode("Scale", {"scale": g.astype(np.float32)}, out, ctx.index[node.name]),
                   v.sources)
    prev = np.zeros(out) if v.shift is None else np.asarray(v.shift, np.float64)
    return Value([name], out, v.unit, shift=prev * g + _per_element(shift, out))


Handler = Callable[[_Ctx, Node, list[Value]], Value]
HANDLERS: dict[str, Handler] = {"dense": _weights, "conv2d": _weights, "relu": _relu, "avgpool2d": _avgpool,
                                "flatten": _flatten, "add": _add, "affine": _affine}
HINTS = {"maxpool2d": "NIR neurons cannot take a maximum; use a strided conv2d or avgpool2d instead",
         "concat": "NIR has no concatenation (a node sums its inputs); use add, or one wider layer instead"}


def build_graph(model: TernaryModel, params: dict[str, Neuron] | None = None, *, integer_weights: bool = False,
                timesteps: int = 32, copies: int = COPIES) -> SpikingGraph:
    """The spiking graph of `model` with the neuron numbers `params` (IF node name -> Neuron; missing: 1, 1).
    Raises UnsupportedError (one line, with a hint) for an operation NIR cannot express."""
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or not 1 <= timesteps <= 100_000:
        raise ArtifactError(f"timesteps must be an integer in 1..100000, got {timesteps!r}")
    shapes = model.shape_map()
    graph = SpikingGraph({}, [], {})
    graph.nodes[INPUT] = NirNode("Input", {"input_type": {"input": np.asarray(shapes[INPUT], np.int64)}},
                                 shapes[INPUT])
    ctx = _Ctx(model, dict(params or {}), integer_weights, shapes, model.consumers(), graph,
               {n.name: i for i, n in enumerate(model.nodes)})
    values: dict[str, Value] = {INPUT: Value([INPUT], shapes[INPUT], np.ones(shapes[INPUT][0]))}
    for node in model.nodes:
        fn = handler(HANDLERS, node.op, "NIR", where=f"node {node.name}", hint=HINTS)
        values[node.name] = fn(ctx, node, [values[i] for i in node.inputs])
    last = model.nodes[-1]
    out = values[last.name]
    if len(out.shape) != 1:
        raise ArtifactError(f"the output {last.name} must be a vector of class scores")
    classes = out.shape
    if not (len(out.sources) == 1 and graph.nodes[out.sources[0]].kind == "IF"):
        k = copies if out.pending and out.sources == [out.pending] and graph.nodes[out.pending].kind == "Affine" else 1
        stagger = None
        if k > 1:  # k copies of the output neurons, thresholds staggered over SPREAD: finer spike counts
            n = graph.nodes[out.pending]
            n.params["weight"] = np.tile(n.params["weight"], (k, 1))
            n.params["bias"] = np.tile(n.params["bias"], k)
            n.shape = (k * classes[0],)
            out = Value(out.sources, n.shape, np.tile(out.unit, k), pending=out.pending)
            stagger = np.repeat(1 + SPREAD * np.arange(k) / k, classes[0])
        out = ctx.neuron(out, last, _unique(f"{last.name}_spikes", graph.nodes), stagger)
        if k > 1:
            total = np.tile(np.eye(classes[0], dtype=np.float32), (1, k))
            name = ctx.add(f"{last.name}_count", NirNode("Affine", {"weight": total, "bias": np.zeros(
                classes[0], np.float32)}, classes), out.sources)
            out = Value([name], classes, out.unit[:classes[0]])
    graph.nodes["output"] = NirNode("Output", {"output_type": {"output": np.asarray(classes, np.int64)}}, classes)
    graph.edges.append((out.sources[0], "output"))
    graph.metadata = {"producer": "ternkit", "timesteps": int(timesteps), "encoding": ENCODING,
                      "integer_weights": int(bool(integer_weights)), "labels": list(model.labels),
                      "input_mean": np.asarray(model.input.mean, np.float32),
                      "input_std": np.asarray(model.input.std, np.float32)}
    return graph

