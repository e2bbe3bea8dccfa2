"""Model node graph -> Lava populations and synapse groups (structure only; numbers come in `lava_graph`).

Why a plan: a Lava network is neuron populations joined by synapse processes, and one population may sum
several synapse groups. So most operations do not make a population of their own: a weight operation, an
average pooling, an `add` or a `concat` is a *pending sum* (`Lin`: synapse groups + bias) that becomes a
population only where the model needs one -- at a ReLU, at the output (the readout), or where a synapse has
to read it. Values are therefore either a `PopRef` (a population's output, possibly flattened, plus a
constant `shift` that consumers fold into their bias) or a `Lin`. One handler per operation kind
(`HANDLERS`, looked up with `core.ops.handler`), no type switches:

- dense / conv2d: a group of integer synapses (conv keeps groups, strides, padding, rectangular kernels);
- add: the groups of every addend into one population (a population input joins as an identity synapse);
- concat: the same, each addend's outputs placed at its channel offset (zero synapses elsewhere);
- avgpool2d: a depthwise conv with constant weights and scale 1/window (count_include_pad semantics);
- affine: folded into the pending sum's scales and bias, or into the preceding ReLU population when the gain is
  positive and nothing else reads it; otherwise a fixed diagonal synapse group;
- relu: the population (sigma-delta ReLU or integrate-and-fire); flatten: a port reshape;
- maxpool2d: refused (one line, what to use instead).

Lava delays a message one step per synapse, so every population's inputs must come from the same depth:
shorter branches (a residual's skip) get relay populations (identity synapses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ternkit.core.errors import ArtifactError, UnsupportedError
from ternkit.core.model import INPUT, Node, TernaryModel
from ternkit.core.ops import Affine, handler

__all__ = ["Group", "Population", "Plan", "plan_model", "HANDLERS", "plan_forward"]

Shape = tuple[int, ...]


@dataclass
class Group:
    """A synapse process from population `src` into a population: real weight = q * s (s per output
    channel), torch layouts. `perm` reorders a dense group's columns to Lava's (X, Y, C) flatten order."""

    src: int
    kind: str  # "dense" | "conv"
    q: np.ndarray  # int64: dense (out, in), conv (Cout, Cin / groups, kH, kW)
    s: np.ndarray  # float64 (out channels,)
    origin: int  # index of the model node it serves (activity entries)
    role: str  # weights | pool | identity | affine | relay
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    perm: np.ndarray | None = None


@dataclass
class Population:
    """Neurons summing `groups` + `bias` (torch shape `shape`), then `activation`."""

    groups: list[Group]
    bias: np.ndarray  # float64, torch shape
    shape: Shape
    activation: str  # relu | linear | readout
    node: str  # the model node it materializes ("input" for the source)
    depth: int  # synapse hops from the source (= its pipeline phase)
    nonneg: bool = False


@dataclass
class Plan:
    populations: list[Population]  # [0] is the input source (no groups)
    neuron: str

    @property
    def readout(self) -> Population:
        return self.populations[-1]


@dataclass
class PopRef:
    pop: int
    flat: bool = False  # a flattened view of a (C, H, W) population
    shift: np.ndarray | None = None  # value = population output + shift (torch shape of the view)


@dataclass
class Lin:
    groups: list[Group]
    bias: np.ndarray  # float64, torch shape
    shape: Shape
    nonneg: bool = False


Value = PopRef | Lin


@dataclass
class _Ctx:
    model: TernaryModel
    neuron: str
    pops: list[Population]
    shapes: dict[str, Shape]
    index: dict[str, int]
    consumers: dict[str, list[str]]
    relays: dict[tuple[int, int], int] = field(default_factory=dict)

    def view_shape(self, ref: PopRef) -> Shape:
        shape = self.pops[ref.pop].shape
        return (int(np.prod(shape)),) if ref.flat else shape

    def nonneg(self, ref: PopRef) -> bool:
        return self.pops[ref.pop].nonneg and (ref.shift is None or bool(np.all(ref.shift >= 0)))

    # -- turning values into each other ---------------------------------------------------------------------
    def as_lin(self, v: Value, origin: int) -> Lin:
        if isinstance(v, Lin):
            return v
        shape = self.view_shape(v)
        g = self._diagonal(v, np.ones(shape[0]), origin, "identity")
        bias = np.zeros(shape) if v.shift is None else np.broadcast_to(v.shift, shape).astype(np.float64)
        return Lin([g], bias, shape, self.nonneg(v))

    def as_pop(self, v: Value, node: Node) -> PopRef:
        if isinstance(v, PopRef):
            return v
        return self.materialize(v, "relu" if v.nonneg else "linear", node)

    def materialize(self, lin: Lin, activation: str, node: Node) -> PopRef:
        if activation == "linear" and self.neuron == "if" and not lin.nonneg:
            raise UnsupportedError(
                f"node {node.name} ({node.op.kind}): integrate-and-fire neurons send unit spikes, so a signed "
                "value (a weight layer without ReLU, an add or affine whose result can be negative) cannot be a "
                "population; use --neuron sigma-delta")
        depth = 1 + max(self.pops[g.src].depth for g in lin.groups)
        groups = [dataclasses.replace(g, src=self._delayed(g.src, depth - 1, g.origin)) for g in lin.groups]
        nonneg = activation == "relu" or (activation == "linear" and lin.nonneg)
        self.pops.append(Population(groups, np.asarray(lin.bias, np.float64), lin.shape,
                                    "relu" if activation == "linear" and lin.nonneg else activation,
                                    node.name, depth, nonneg))
        return PopRef(len(self.pops) - 1)

    def _delayed(self, src: int, depth: int, origin: int) -> int:
        """`src` delayed by relay populations until its output leaves at `depth` (shared between readers)."""
        while self.pops[src].depth < depth:
            key = (src, self.pops[src].depth + 1)
            if key not in self.relays:
                p = self.pops[src]
                if not p.nonneg and self.neuron == "if":
                    raise UnsupportedError(f"node {p.node}: a signed value cannot be relayed by integrate-and-fire "
                                           "neurons; use --neuron sigma-delta")
                g = self._diagonal(PopRef(src), np.ones(p.shape[0]), origin, "relay")
                self.pops.append(Population([g], np.zeros(p.shape), p.shape, "relu" if p.nonneg else "linear",
                                            p.node + ".relay", p.depth + 1, p.nonneg))
                self.relays[key] = len(self.pops) - 1
            src = self.relays[key]
        return src

    def _diagonal(self, ref: PopRef, gain: np.ndarray, origin: int, role: str) -> Group:
        """One synapse per neuron (weight gain[c]): a 1x1 depthwise conv on (C, H, W), a diagonal dense else."""
        shape = self.view_shape(ref)
        if len(shape) == 3:
            c = shape[0]
            return Group(ref.pop, "conv", np.ones((c, 1, 1, 1), np.int64), np.asarray(gain, np.float64), origin,
                         role, groups=c)
        n = shape[0]
        return Group(ref.pop, "dense", np.eye(n, dtype=np.int64), np.asarray(gain, np.float64), origin, role,
                     perm=self._perm(ref))

    def _perm(self, ref: PopRef) -> np.ndarray | None:
        shape = self.pops[ref.pop].shape
        if not ref.flat or len(shape) != 3:
            return None
        return np.arange(int(np.prod(shape))).reshape(shape).transpose(2, 1, 0).reshape(-1)


# ---------------------------------------------------------------------------------------------- handlers
def _shift_through(op, ref: PopRef, out_shape: Shape) -> np.ndarray:
    """What the operation makes of the constant `shift` of its input (zero padding stays zero): bias."""
    if ref.shift is None:
        return np.zeros(out_shape)
    zero = dataclasses.replace(op, bias=np.zeros_like(op.bias)) if op.has_weights else op
    return zero.forward(np.asarray(ref.shift, np.float32)[None])[0].astype(np.float64)


def _weights(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, i = node.op, ctx.index[node.name]
    ref = ctx.as_pop(ins[0], node)
    out = ctx.shapes[node.name]
    q, s = op.weight.astype(np.int64), op.channel_scale().astype(np.float64)
    bias = np.broadcast_to(op.bias.astype(np.float64).reshape((-1,) + (1,) * (len(out) - 1)), out)
    bias = bias + _shift_through(op, ref, out)
    if op.kind == "conv2d":
        if len(ctx.view_shape(ref)) != 3:
            raise UnsupportedError(f"node {node.name}: a convolution of a flattened value cannot be mapped to Lava")
        g = Group(ref.pop, "conv", q, s, i, "weights", tuple(op.stride), tuple(op.padding), int(op.groups))
    else:
        g = Group(ref.pop, "dense", q, s, i, "weights", perm=ctx._perm(ref))
    return Lin([g], bias, out)


def _avgpool(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, i = node.op, ctx.index[node.name]
    ref = ctx.as_pop(ins[0], node)
    c = ctx.view_shape(ref)[0]
    kh, kw = op.kernel
    g = Group(ref.pop, "conv", np.ones((c, 1, kh, kw), np.int64), np.full(c, 1.0 / (kh * kw)), i, "pool",
              tuple(op.stride), tuple(op.padding), c)
    out = ctx.shapes[node.name]
    return Lin([g], _shift_through(op, ref, out), out, ctx.nonneg(ref))


def _add(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    lins = [ctx.as_lin(v, ctx.index[node.name]) for v in ins]
    return Lin([g for lin in lins for g in lin.groups], sum(lin.bias for lin in lins), ctx.shapes[node.name],
               all(lin.nonneg for lin in lins))


def _pad_rows(g: Group, offset: int, total: int) -> Group:
    """The group's outputs placed at channels offset.. of `total` (zero synapses elsewhere)."""
    q, groups = g.q, g.groups
    if g.kind == "conv" and groups > 1:  # expand to a block-diagonal kernel: output padding breaks groups
        cout, cin_g = q.shape[0], q.shape[1]
        full = np.zeros((cout, cin_g * groups) + q.shape[2:], np.int64)
        per = cout // groups
        for k in range(groups):
            full[k * per:(k + 1) * per, k * cin_g:(k + 1) * cin_g] = q[k * per:(k + 1) * per]
        q, groups = full, 1
    qp = np.zeros((total,) + q.shape[1:], np.int64)
    qp[offset:offset + len(q)] = q
    sp = np.full(total, g.s[0])
    sp[offset:offset + len(q)] = g.s
    return dataclasses.replace(g, q=qp, s=sp, groups=groups)


def _concat(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    lins = [ctx.as_lin(v, ctx.index[node.name]) for v in ins]
    out = ctx.shapes[node.name]
    groups, offset = [], 0
    for lin in lins:
        groups += [_pad_rows(g, offset, out[0]) for g in lin.groups]
        offset += lin.shape[0]
    return Lin(groups, np.concatenate([lin.bias for lin in lins], axis=0), out, all(lin.nonneg for lin in lins))


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, np.float64).reshape((-1,) + (1,) * (ndim - 1))


def _affine(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    op, (v,) = node.op, ins
    gain, shift = op.scale.astype(np.float64), op.bias.astype(np.float64)
    out = ctx.shapes[node.name]
    if isinstance(v, Lin):  # scale and bias of the pending sum's neurons
        groups = [dataclasses.replace(g, s=g.s * gain) for g in v.groups]
        return Lin(groups, v.bias * _channel(gain, len(out)) + _channel(shift, len(out)), out)
    src = ctx.pops[v.pop]
    reader = node.inputs[0]
    foldable = (v.pop > 0 and not v.flat and src.node == reader and ctx.consumers.get(reader) == [node.name]
                and src.activation in ("relu", "linear") and (src.activation == "linear" or bool(np.all(gain > 0))))
    prev = np.zeros(out) if v.shift is None else np.broadcast_to(v.shift, out)
    new_shift = prev * _channel(gain, len(out)) + _channel(shift, len(out))
    if foldable:  # relu(z) * g = relu(z * g) for g > 0: the gain goes into the population's synapses and bias
        for k, g in enumerate(src.groups):
            src.groups[k] = dataclasses.replace(g, s=g.s * gain)
        src.bias = src.bias * _channel(gain, len(out))
        return PopRef(v.pop, shift=np.asarray(new_shift, np.float64))
    g = ctx._diagonal(v, gain, ctx.index[node.name], "affine")
    return Lin([g], np.asarray(new_shift, np.float64), out)


def _relu(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    (v,) = ins
    if isinstance(v, PopRef) and ctx.nonneg(v):
        return v  # already non-negative
    return ctx.materialize(ctx.as_lin(v, ctx.index[node.name]), "relu", node)


def _flatten(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    ref = ctx.as_pop(ins[0], node)
    shift = None if ref.shift is None else np.broadcast_to(ref.shift, ctx.view_shape(ref)).reshape(-1)
    return PopRef(ref.pop, flat=True, shift=shift)


def _scale_shift(ctx: _Ctx, node: Node, ins: list[Value]) -> Value:
    """x * a + b with constants: the per-channel affine with every channel alike."""
    c = ctx.shapes[node.name][0]
    aff = Affine(np.full(c, node.op.mul, np.float32), np.full(c, node.op.add, np.float32))
    return _affine(ctx, Node(node.name, aff, node.inputs), ins)


Handler = Callable[[_Ctx, Node, list[Value]], Value]
HANDLERS: dict[str, Handler] = {"dense": _weights, "conv2d": _weights, "avgpool2d": _avgpool, "add": _add,
                                "concat": _concat, "affine": _affine, "relu": _relu, "flatten": _flatten,
                                "scale_shift": _scale_shift}
_ONLY_RELU = "Lava's neurons compute ReLU (sigma-delta or integrate-and-fire) and nothing smoother: train with ReLU"
HINTS = {"maxpool2d": "neuromorphic neurons cannot take a maximum; use a strided conv2d or avgpool2d instead",
         "clip": "Lava's neurons clamp only at zero: use ReLU instead of ReLU6, Hardtanh or clamp",
         "hardswish": _ONLY_RELU, "hardsigmoid": _ONLY_RELU, "sigmoid": _ONLY_RELU, "silu": _ONLY_RELU,
         "tanh": _ONLY_RELU, "gelu": _ONLY_RELU,
         "mul": "neurons add their synaptic inputs and cannot multiply two signals: leave out the "
                "squeeze-excitation gate (or use add)",
         "transpose": "a population keeps its (C, H, W) layout; shuffle channels by ordering the next conv's "
                      "input channels instead",
         "slice": "split channels with two convolutions reading the whole tensor instead of chunk/split",
         "reshape": "a population keeps its (C, H, W) layout; flatten (x.flatten(1)) is the reshape it takes",
         "avgpool2d_exclude_pad": "a synapse's weight cannot change with the position: use count_include_pad=True "
                                  "(torch's default) or no padding"}


def plan_model(model: TernaryModel, neuron: str, input_shift: np.ndarray | None) -> Plan:
    """The populations of `model`; the source sends x / std (or the normalised input), and `input_shift`
    (-mean / std, or None) is folded into the biases of the input's readers."""
    shapes = model.shape_map()
    src = Population([], np.zeros(shapes[INPUT]), shapes[INPUT], "source", INPUT, 0, False)
    ctx = _Ctx(model, neuron, [src], shapes, {n.name: i for i, n in enumerate(model.nodes)}, model.consumers())
    values: dict[str, Value] = {INPUT: PopRef(0, shift=input_shift)}
    for node in model.nodes:
        fn = handler(HANDLERS, node.op, "Lava", where=f"node {node.name}", hint=HINTS)
        values[node.name] = fn(ctx, node, [values[i] for i in node.inputs])
    last = model.nodes[-1]
    out = ctx.as_lin(values[last.name], ctx.index[last.name])
    if len(out.shape) != 1:
        raise ArtifactError(f"the output {last.name} must be a vector of class scores")
    ctx.materialize(out, "readout", last)
    return Plan(ctx.pops, neuron)


# ---------------------------------------------------------------------------------------------- reference
def group_forward(g: Group, a: np.ndarray, src_shape: Shape, w: np.ndarray | None = None) -> np.ndarray:
    """Synaptic input of group `g` for a batch `a` of its source's outputs (torch layout; w defaults to
    q * s). Exact for integer arrays (int64)."""
    from .emulate import conv_int

    if w is None:
        w = g.q * g.s.reshape((-1,) + (1,) * (g.q.ndim - 1))
    if g.kind == "conv":
        return conv_int(a.reshape((len(a),) + tuple(src_shape)), w, g.stride, g.padding, g.groups)
    return a.reshape(len(a), -1) @ w.T


def plan_forward(plan: Plan, x: np.ndarray) -> list[np.ndarray]:
    """Real-valued outputs of every population for a batch of source values `x` (float64): what the
    calibration reads (thresholds, ranges); the readout's equals the model's logits up to rounding."""
    outs: list[np.ndarray] = [np.asarray(x, np.float64).reshape((len(x),) + tuple(plan.populations[0].shape))]
    for p in plan.populations[1:]:
        acc = sum(group_forward(g, outs[g.src], plan.populations[g.src].shape).reshape((len(x),) + p.shape)
                  for g in p.groups)
        pre = acc + p.bias[None]
        outs.append(np.maximum(pre, 0) if p.activation == "relu" else pre)
    return outs
