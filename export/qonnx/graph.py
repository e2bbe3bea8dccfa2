"""Build the QONNX graph of a `TernaryModel`: one handler per operation kind.

QONNX is ONNX plus arbitrary-precision quantisation nodes (`Quant`, domain `qonnx.custom_op.general`); it is
what hls4ml and FINN read. Each weight operation is written as

    Quant(W_int, scale=1, zero=0, bitwidth=b, signed, narrow) -> MatMul | Conv -> Mul(per-channel scale) -> Add(bias)

for two reasons measured with qonnx 1.0.0 / hls4ml 1.3.0:
- the integer weights carry a `Quant` (not the newer name `IntQuant`): qonnx's `cleanup_model` protects only
  `Quant` from constant folding, an `IntQuant` on a constant is silently folded to float weights;
- the per-output-channel scale is an explicit `Mul` after the MatMul/Conv, not the `Quant`'s scale: hls4ml
  cannot move a per-channel scale below a MatMul ("Failed to propagate quantization scales"), while a `Mul`
  by a constant becomes an ApplyAlpha layer that also absorbs the bias.
So hls4ml types every weight as a `b`-bit fixed-point integer (ternary: `ap_fixed<2,2,..,AP_SAT_SYM>`): an
adder, a subtractor or nothing per weight, no multiplier.

Input normalisation `(x - mean) / std` runs in the graph (Sub, Div), so callers feed raw samples as with the
ONNX export. Activations may carry an unsigned `Quant` after each ReLU (`act_bits`, e.g. 8) with a scale from
calibration data: the graph is then a quantised model, checked against `quantised_forward` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ternkit.core import INPUT
from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.model import Node, TernaryModel
from ternkit.core.ops import handler
from ternkit.core.ops.conv2d import expand_groups

from .hints import HINTS

__all__ = ["QONNX_DOMAIN", "INPUT_NAME", "OUTPUT_NAME", "HANDLERS", "HINTS", "ActQuant", "build_qonnx",
           "weight_bits", "activation_quant", "quantised_forward", "fake_quant"]

QONNX_DOMAIN = "qonnx.custom_op.general"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 13  # what qonnx's transformations and hls4ml's ONNX reader are written against
IR_VERSION = 8
ACT_BITS = (4, 8)  # activation Quant widths offered (unsigned, after ReLU)

def weight_bits(levels: int) -> int:
    """Signed narrow-range width that holds {-L..L}: 2 bits for ternary (L=1), 3 for L<=3, 4 for L<=7."""
    return int(np.ceil(np.log2(2 * levels + 1)))


@dataclass(frozen=True)
class ActQuant:
    """Unsigned `bits`-bit quantisation of the ReLU outputs named in `scales` (node -> scale)."""

    bits: int
    scales: dict[str, float] = field(default_factory=dict)


def fake_quant(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """QONNX `Quant` (unsigned, not narrow, ROUND = half to even) as float32: scale * clip(round(x / scale))."""
    s = np.float32(scale)
    q = np.clip(np.round(x / s), 0, (1 << bits) - 1)
    return (q * s).astype(np.float32)


def activation_quant(model: TernaryModel, x: np.ndarray, bits: int) -> ActQuant:
    """Per-ReLU scales so that the largest activation on `x` (raw samples) maps to the top code."""
    if bits not in ACT_BITS:
        raise OptionError(f"activation bits must be one of {', '.join(map(str, ACT_BITS))}, got {bits}")
    acts = dict(zip([n.name for n in model.nodes], model.activations(x), strict=True))
    top = (1 << bits) - 1
    return ActQuant(bits, {n.name: float(max(float(acts[n.name].max()), 1e-6)) / top
                           for n in model.nodes if n.op.kind == "relu"})


def quantised_forward(model: TernaryModel, x: np.ndarray, act: ActQuant | None) -> np.ndarray:
    """The reference forward with the activation quantisation of `act` applied after each ReLU: what the
    QONNX graph computes (equal to `model.forward` when `act` is None)."""
    if act is None:
        return model.forward(x)
    values = {INPUT: model.input.normalise(x)}
    for n in model.nodes:
        y = n.op.forward(*[values[i] for i in n.inputs])
        values[n.name] = fake_quant(y, act.scales[n.name], act.bits) if n.name in act.scales else y
    return values[model.nodes[-1].name]


class _Builder:
    def __init__(self, model: TernaryModel, act: ActQuant | None, for_hls4ml: bool = False) -> None:
        self.model, self.act, self.for_hls4ml = model, act, for_hls4ml
        self.bits = weight_bits(model.levels)
        self.shapes = model.shape_map()
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.names: set[str] = {INPUT_NAME, OUTPUT_NAME}

    def unique(self, stem: str) -> str:
        name, i = stem, 0
        while name in self.names:
            i += 1
            name = f"{stem}_{i}"
        self.names.add(name)
        return name

    def const(self, name: str, arr: np.ndarray) -> str:
        arr = np.asarray(arr)
        t = numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(), self.unique(name))
        self.inits.append(t)
        return t.name

    def node(self, op: str, inputs: list[str], stem: str, domain: str | None = None, **attrs) -> str:
        out = self.unique(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def quant(self, x: str, stem: str, scale: float, bits: int, signed: bool, narrow: bool) -> str:
        inputs = [x, self.const(f"{stem}_qscale", np.float32(scale)), self.const(f"{stem}_qzero", np.float32(0)),
                  self.const(f"{stem}_qbits", np.float32(bits))]
        return self.node("Quant", inputs, stem, domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow),
                         rounding_mode="ROUND")

    def int_weight(self, n: Node, w: np.ndarray) -> str:
        """The integer weights as float constants behind a signed narrow `Quant` of scale 1."""
        return self.quant(self.const(f"{n.name}_weight", w.astype(np.float32)), f"{n.name}_wq", 1.0, self.bits,
                          True, True)

    def scale_bias(self, n: Node, y: str, view: tuple[int, ...]) -> str:
        op = n.op
        y = self.node("Mul", [y, self.const(f"{n.name}_scale", op.channel_scale().reshape(view))], f"{n.name}_mul")
        return self.node("Add", [y, self.const(f"{n.name}_bias", op.bias.astype(np.float32).reshape(view))],
                         f"{n.name}_add")


def _dense(b: _Builder, n: Node, xs: list[str]) -> str:
    y = b.node("MatMul", [xs[0], b.int_weight(n, n.op.weight.T)], f"{n.name}_matmul")
    return b.scale_bias(n, y, (-1,))




def _conv2d(b: _Builder, n: Node, xs: list[str]) -> str:
    op = n.op
    (ph, pw), (sh, sw) = op.padding, op.stride
    weight, groups = op.weight, op.groups
    if b.for_hls4ml and 1 < groups < op.in_channels:  # hls4ml 1.3.0 reads groups only as depthwise
        weight, groups = expand_groups(op.weight, groups), 1
    y = b.node("Conv", [xs[0], b.int_weight(n, weight)], f"{n.name}_conv", kernel_shape=list(op.kernel),
               strides=[sh, sw], pads=[ph, pw, ph, pw], group=groups, dilations=[1, 1])
    return b.scale_bias(n, y, (-1, 1, 1))  # rank 3: hls4ml broadcasts it onto (H, W, C) once channels-last


def _pool_attrs(op) -> dict:
    (ph, pw) = op.padding
    return {"kernel_shape": list(op.kernel), "strides": list(op.stride), "pads": [ph, pw, ph, pw]}


def _avgpool2d(b: _Builder, n: Node, xs: list[str]) -> str:
    """A sum over the window as a depthwise Conv of integer ones (zero padding: torch's count_include_pad),
    then a `Mul` by 1/window. hls4ml 1.3.0 reads `AveragePool` only in a channels-last form qonnx 1.0.0 does
    not produce, and its `GlobalAveragePool` disagreed with the reference (92 % argmax on a probe); a depthwise
    conv and a scalar `Mul` are forms it runs exactly, and the window sum stays adders as the weights do."""
    op = n.op
    c = b.shapes[n.inputs[0]][0]
    (kh, kw), (ph, pw), (sh, sw) = op.kernel, op.padding, op.stride
    ones = b.quant(b.const(f"{n.name}_window", np.ones((c, 1, kh, kw), np.float32)), f"{n.name}_wq", 1.0, b.bits,
                   True, True)
    y = b.node("Conv", [xs[0], ones], f"{n.name}_sum", kernel_shape=[kh, kw], strides=[sh, sw],
               pads=[ph, pw, ph, pw], group=c, dilations=[1, 1])
    return b.node("Mul", [y, b.const(f"{n.name}_inv", np.float32(1.0 / (kh * kw)))], f"{n.name}_avg")


def _maxpool2d(b: _Builder, n: Node, xs: list[str]) -> str:
    """torch's ceil_mode as extra bottom/right padding (padding never wins a max): the same windows in a form
    without ceil_mode, which hls4ml 1.3.0 does not read."""
    op = n.op
    _, h, w = b.shapes[n.inputs[0]]
    _, oh, ow = b.shapes[n.name]
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    eh, ew = max(0, (oh - 1) * sh + kh - h - 2 * ph), max(0, (ow - 1) * sw + kw - w - 2 * pw)
    return b.node("MaxPool", xs, f"{n.name}_maxpool", kernel_shape=[kh, kw], strides=[sh, sw],
                  pads=[ph, pw, ph + eh, pw + ew])


def _add(b: _Builder, n: Node, xs: list[str]) -> str:
    y = xs[0]
    for x in xs[1:]:  # left to right, two at a time: the reference's order, and hls4ml merges two inputs
        y = b.node("Add", [y, x], f"{n.name}_add")
    return y


def _relu(b: _Builder, n: Node, xs: list[str]) -> str:
    y = b.node("Relu", xs, f"{n.name}_relu")
    if b.act is not None and n.name in b.act.scales:
        y = b.quant(y, f"{n.name}_aq", b.act.scales[n.name], b.act.bits, False, False)
    return y


HANDLERS: dict[str, Callable[[_Builder, Node, list[str]], str]] = {
    "dense": _dense,
    "conv2d": _conv2d,
    "avgpool2d": _avgpool2d,
    "maxpool2d": _maxpool2d,
    "add": _add,
    "relu": _relu,
    "flatten": lambda b, n, xs: b.node("Flatten", xs, f"{n.name}_flatten", axis=1),
}


def _channel_stats(model: TernaryModel) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std per channel (axis 0 of a sample) when the normalisation is constant within each channel
    (per-feature for tables, per-channel for images), else None."""
    shape = tuple(model.input.shape)
    out = []
    for a in (model.input.mean, model.input.std):
        full = np.broadcast_to(np.asarray(a, np.float32), shape).reshape(shape[0], -1)
        if not np.all(full == full[:, :1]):
            return None
        out.append(np.ascontiguousarray(full[:, 0]))
    return out[0], out[1]


def _normalise(b: _Builder, model: TernaryModel) -> str:
    """`(x - mean) / std` as a BatchNormalization (epsilon 0, variance std^2) when it is per channel: hls4ml
    keeps that a layer of its own, while a Sub/Div pair becomes a scale that hls4ml 1.3.0 tries, and fails, to
    move below the first MatMul. No node at all for an identity normalisation; Sub/Div when the statistics
    vary within a channel (qonnx and FINN read it; hls4ml 1.3.0 does not)."""
    stats = _channel_stats(model)
    if stats is None:
        x = b.node("Sub", [INPUT_NAME, b.const("input_mean", model.input.mean.astype(np.float32))], "normalise_sub")
        return b.node("Div", [x, b.const("input_std", model.input.std.astype(np.float32))], "normalise_div")
    mean, std = stats
    if not mean.any() and np.all(std == 1):
        return INPUT_NAME
    c = len(mean)
    inputs = [b.const("input_gamma", np.ones(c, np.float32)), b.const("input_beta", np.zeros(c, np.float32)),
              b.const("input_mean", mean), b.const("input_var", (std.astype(np.float64) ** 2).astype(np.float32))]
    return b.node("BatchNormalization", [INPUT_NAME, *inputs], "normalise", epsilon=0.0)


def _rename(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    """The graph's last tensor takes the output name (hls4ml loses an output behind an `Identity`)."""
    if old == INPUT_NAME:
        raise ArtifactError("the model has no operations; nothing to export")
    for node in nodes:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]


def build_qonnx(model: TernaryModel, act: ActQuant | None = None, normalise: bool = True,
                for_hls4ml: bool = False) -> onnx.ModelProto:
    """The QONNX model for `model` (validated first; an operation without a handler is refused with a hint).
    `for_hls4ml`: grouped (not depthwise) convolutions as ungrouped ones with block-diagonal weights."""
    model.validate()
    if model.kind == "float":
        raise ArtifactError("a float model has no integer weights to quantise; QONNX export needs a ternary "
                            "(or k-level) model -- export ONNX --float instead")
    handlers = [handler(HANDLERS, n.op, "QONNX", where=f"node {n.name}", hint=HINTS) for n in model.nodes]
    b = _Builder(model, act, for_hls4ml)
    shape = tuple(int(d) for d in model.input.shape)
    values = {INPUT: _normalise(b, model) if normalise else INPUT_NAME}
    for n, fn in zip(model.nodes, handlers, strict=True):
        values[n.name] = fn(b, n, [values[i] for i in n.inputs])
    _rename(b.nodes, values[model.nodes[-1].name], OUTPUT_NAME)  # no Identity: hls4ml drops it, and the output
    graph = helper.make_graph(
        b.nodes, "ternkit_qonnx",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, model.num_classes])],
        b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(QONNX_DOMAIN, 1)],
                          producer_name="ternkit",
                          doc_string="ternkit model as QONNX (Quant on integer weights); input is raw")
    m.ir_version = IR_VERSION
    helper.set_model_props(m, {"ternkit.weight_bits": str(b.bits),
                               "ternkit.activation_bits": str(act.bits) if act else "float",
                               "ternkit.labels": ",".join(str(x) for x in model.labels)[:10000]})
    return m
