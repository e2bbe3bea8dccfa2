"""Build the ONNX graph of a `TernaryModel`: one handler per operation kind, one weight form per format.

Weight formats (how a weight operation's integer weights reach its `Gemm`/`Conv`):
- `int2` (default): packed INT2 initializers (2 bits each on disk, the `.tern` bytes) -> `DequantizeLinear`
  with the layer's scale. ONNX IR 11, opset 25. Models with more levels (k <= 7) use INT4 the same way.
- `int2-cast`: the same INT2 initializers, `Cast` to float and `Mul` by the scale instead of
  `DequantizeLinear`: plain constant folding removes both at load, in any session options.
- `int8`: the QDQ graph with int8 initializers, IR 7 / opset 13, for runtimes without INT2.
- `float`: float32 weights (scale folded in), IR 7 / opset 13: the size and speed baseline.
- `nbits`: dense layers as onnxruntime's contrib operator `com.microsoft.MatMulNBits` (bits=2, zero point 2,
  per-row scale, `accuracy_level=4`): the weights stay 2-bit in memory and the kernel computes on them, so
  it is faster than float and holds 1/16 of the bytes. Only layers with at least `NBITS_MIN_WEIGHTS`
  weights: below that, quantising the activations to int8 costs more than the 2-bit kernel saves (measured,
  docs/onnx.md), so small layers (e.g. a 10-wide output layer) use the `int2-cast` form (2-bit on disk, float
  at load). Convolutions use the `int2-cast` form too (measured faster than im2col + MatMulNBits for the
  convolutions these models have).

Dense layers are never written as `DequantizeLinear -> MatMul`: onnxruntime 1.32 rewrites that (default
optimisations) into `MatMulNBits` and returns wrong logits for INT2 weights (docs/onnx.md has a
reproduction); `DQ -> Gemm(transB=1)` is left alone. Input normalisation `(x - mean) / std` runs inside the
graph, so callers feed raw samples. The graph follows the artifact's nodes (a chain is the special case).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ternkit.core import INPUT
from ternkit.core.errors import ArtifactError
from ternkit.core.model import Node, TernaryModel
from ternkit.core.ops import handler
from ternkit.core.packing import pack_ints

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "NBITS_BLOCK", "NBITS_MIN_WEIGHTS", "NBITS_OPS", "build_graph",
           "resolve_format", "weight_format", "nbits_pack", "nbits_kernel"]

FORMATS = ("int2", "int2-cast", "int8", "float", "nbits")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NBITS_BLOCK = 128  # MatMulNBits block along K (one int8 activation scale per block at accuracy_level 4)
NBITS_OPS = ["com.microsoft.MatMulNBits"]
# A dense layer becomes MatMulNBits only from this many weights (K*N) up. Measured with onnxruntime 1.32, one
# thread, batch 1/16/256, one layer alone against its float Gemm: below 2^17 weights most shapes were slower
# (0.2-1.0x: 256x10, 784x64, 784x128, 256x256, 64x256; the int8 activation quantisation costs about K per row
# whatever N is) and the few that gained did so by <= 1.25x (512x128, 1024x64, 2048x32); from 2^17 up every
# measured shape (784x256, 512x256, 1024x128, 2048x64, ...) was faster at every batch.
# `benchmarks/onnx.py --part nbits` measures the whole models with and without it.
NBITS_MIN_WEIGHTS = 1 << 17
CONV_FORMS = ("conv", "im2col")  # nbits: Cast*scale -> Conv (default), or im2col -> MatMulNBits (groups=1)
_OPSET = {"int2": (25, 11), "int2-cast": (25, 11), "int8": (13, 7), "float": (13, 7), "nbits": (25, 11)}


def resolve_format(model: TernaryModel, fmt: str) -> str:
    """The format actually written: a float artifact has no integer weights, so it always exports as float."""
    if fmt not in FORMATS:
        raise ArtifactError(f"unknown ONNX weight format {fmt!r}; use one of {', '.join(FORMATS)}")
    return "float" if model.kind == "float" else fmt


def weight_format(model: TernaryModel, fmt: str) -> str:
    """Name of the weights as stored: int2 / int4 (more levels), int2-cast, int8, float, int2-nbits."""
    fmt = resolve_format(model, fmt)
    if fmt == "nbits":
        return f"int{_nbits_bits(model.levels)}-nbits"
    return fmt.replace("int2", "int4") if fmt.startswith("int2") and model.levels > 1 else fmt


def nbits_kernel(op, min_weights: int = NBITS_MIN_WEIGHTS) -> bool:
    """Whether the nbits format writes this dense operation as MatMulNBits (large enough to gain from it)."""
    return op.kind == "dense" and op.weight.size >= min_weights


def _nbits_bits(levels: int) -> int:
    return 2 if levels == 1 else 4  # MatMulNBits codes: 2-bit holds {-2..1} around zero point 2, 4-bit {-8..7}


def nbits_pack(weight: np.ndarray, levels: int, block: int = NBITS_BLOCK) -> tuple[np.ndarray, int]:
    """MatMulNBits B for an (N, K) integer weight: codes = weight + zero point (2 for bits=2), K padded with
    the zero point to a block multiple, packed 8/bits per byte low bits first, shaped [N, K/block, block*bits/8]."""
    bits = _nbits_bits(levels)
    n, k = weight.shape
    blocks = -(-k // block)
    zp = 1 << (bits - 1)
    codes = np.full((n, blocks * block), zp, np.uint8)
    codes[:, :k] = (weight.astype(np.int16) + zp).astype(np.uint8)
    per = 8 // bits
    codes = codes.reshape(n, blocks, block // per, per)
    packed = np.zeros(codes.shape[:3], np.uint8)
    for j in range(per):
        packed |= codes[..., j] << np.uint8(j * bits)
    return packed, bits


def _low_bit_tensor(name: str, q: np.ndarray, levels: int) -> TensorProto:
    """INT2 (ternary) or INT4 initializer; raw_data is the `.tern` packing (two's complement, low bits first)."""
    bits, dtype = (2, TensorProto.INT2) if levels == 1 else (4, TensorProto.INT4)
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(q.shape)
    t.raw_data = pack_ints(q, bits).tobytes()
    return t


def _compact(a: np.ndarray) -> np.ndarray:
    """A constant statistics tensor as one element: it broadcasts to the same float32 arithmetic."""
    a = np.asarray(a, np.float32)
    return a.reshape(-1)[:1].copy() if a.size > 1 and np.all(a == a.reshape(-1)[0]) else a


def _norm_record(mean: np.ndarray, std: np.ndarray) -> dict:
    """Normalisation for metadata_props: the values when small, else the initializer names (so a
    per-pixel normalisation does not double the file)."""
    rec: dict = {"in_graph": True, "formula": "(x - mean) / std", "shape": list(mean.shape)}
    if mean.size + std.size <= 128:
        return {**rec, "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
                "std_shape": list(std.shape)}
    return {**rec, "mean_initializer": "input_mean", "std_initializer": "input_std", "std_shape": list(std.shape)}


def _scale_b(op) -> np.ndarray:
    """Scale shaped to broadcast over the weight's output axis (axis 0)."""
    return op.scale.astype(np.float32).reshape((-1,) + (1,) * (op.weight.ndim - 1))


def _scale_dq(op) -> np.ndarray:
    """DequantizeLinear scale: per layer a scalar (no axis needed), per channel a 1-D tensor on axis 0."""
    s = np.ascontiguousarray(op.scale, dtype=np.float32)
    return s.reshape(()) if s.size == 1 else s


class _Builder:
    def __init__(self, model: TernaryModel, fmt: str, nbits_block: int, conv_form: str,
                 nbits_min_weights: int = NBITS_MIN_WEIGHTS) -> None:
        self.model, self.fmt, self.nbits_block, self.conv_form = model, fmt, nbits_block, conv_form
        self.nbits_min_weights = nbits_min_weights
        self.shapes = model.shape_map()
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.names: set[str] = {INPUT_NAME, OUTPUT_NAME}
        self.count = 0
        self.contrib = False

    def unique(self, stem: str) -> str:
        name = stem
        while name in self.names:
            self.count += 1
            name = f"{stem}_{self.count}"
        self.names.add(name)
        return name

    def init(self, t: TensorProto) -> str:
        t.name = self.unique(t.name)
        self.inits.append(t)
        return t.name

    def const(self, name: str, arr: np.ndarray) -> str:
        """An initializer under a stable name (node name + role), as tools and tests look them up."""
        arr = np.asarray(arr)  # not ascontiguousarray: it turns a 0-d scale into shape (1,)
        return self.init(numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(), name))

    def node(self, op: str, inputs: list[str], stem: str, domain: str | None = None, **attrs) -> str:
        out = self.unique(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def weight(self, n: Node) -> str:
        """Name of the float weight tensor `Gemm`/`Conv` reads (dequantised in the graph unless float)."""
        return _WEIGHT_FORMS[self.fmt](self, n)

    def bias(self, n: Node) -> str:
        return self.const(f"{n.name}_bias", n.op.bias.astype(np.float32))


# -- weight forms: integer weights -> the float weight tensor (one per format) ------------------------------
def _w_float(b: _Builder, n: Node) -> str:
    return b.const(f"{n.name}_weight", (n.op.weight.astype(np.float32) * _scale_b(n.op)).astype(np.float32))


def _w_dq(b: _Builder, n: Node) -> str:
    q = b.init(_low_bit_tensor(f"{n.name}_weight_q", n.op.weight.astype(np.int8), b.model.levels))
    return b.node("DequantizeLinear", [q, b.const(f"{n.name}_scale", _scale_dq(n.op))], f"{n.name}_weight", axis=0)


def _w_cast(b: _Builder, n: Node) -> str:
    """Cast * scale: folded at load by onnxruntime with default options too."""
    q = b.init(_low_bit_tensor(f"{n.name}_weight_q", n.op.weight.astype(np.int8), b.model.levels))
    wf = b.node("Cast", [q], f"{n.name}_weight_f", to=TensorProto.FLOAT)
    return b.node("Mul", [wf, b.const(f"{n.name}_scale", _scale_b(n.op))], f"{n.name}_weight")


def _w_int8(b: _Builder, n: Node) -> str:
    s = _scale_dq(n.op)
    q = b.const(f"{n.name}_weight_q", n.op.weight.astype(np.int8))
    # opset 13 wants an explicit zero point to carry the int8 type
    inputs = [q, b.const(f"{n.name}_scale", s), b.const(f"{n.name}_zero", np.zeros(s.shape, np.int8))]
    return b.node("DequantizeLinear", inputs, f"{n.name}_weight", axis=0)


_WEIGHT_FORMS: dict[str, Callable[[_Builder, Node], str]] = {
    "float": _w_float, "int2": _w_dq, "int2-cast": _w_cast, "int8": _w_int8,
    "nbits": _w_cast,  # what a conv uses in the nbits format (dense layers use MatMulNBits)
}


# -- operation handlers: (builder, node, input tensor names) -> output tensor name --------------------------
def matmul_nbits(b: _Builder, n: Node, x: str, weight: np.ndarray) -> str:
    """x (..., K) @ (scale * weight).T + bias as MatMulNBits; `weight` is (N, K) integer."""
    op = n.op
    nout, k = weight.shape
    packed, bits = nbits_pack(weight, b.model.levels, b.nbits_block)
    scales = np.repeat(op.channel_scale()[:, None], packed.shape[1], axis=1).astype(np.float32)
    b.contrib = True
    return b.node("MatMulNBits", [x, b.const(f"{n.name}_weight_nbits", packed), b.const(f"{n.name}_scale", scales),
                                  "", "", b.bias(n)], f"{n.name}_matmulnbits", domain="com.microsoft",
                  K=k, N=nout, bits=bits, block_size=b.nbits_block, accuracy_level=4)


def _dense(b: _Builder, n: Node, xs: list[str]) -> str:
    if b.fmt == "nbits" and nbits_kernel(n.op, b.nbits_min_weights):
        return matmul_nbits(b, n, xs[0], n.op.weight)
    return b.node("Gemm", [xs[0], b.weight(n), b.bias(n)], f"{n.name}_dense", transB=1)


def _conv2d_im2col(b: _Builder, n: Node, x: str) -> str:
    """Conv (groups=1) as Gather of every window (im2col, padding read from one appended zero column) ->
    MatMulNBits -> back to (N, C_out, OH, OW): the convolution computing on 2-bit weights."""
    op = n.op
    c, h, w = b.shapes[n.inputs[0]]
    _, oh, ow = b.shapes[n.name]
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    hh = (np.arange(oh) * sh - ph)[:, None, None, None, None] + np.arange(kh)[None, None, None, :, None]
    ww = (np.arange(ow) * sw - pw)[None, :, None, None, None] + np.arange(kw)[None, None, None, None, :]
    cc = np.arange(c)[None, None, :, None, None]
    idx = cc * h * w + hh * w + ww
    idx = np.where((hh >= 0) & (hh < h) & (ww >= 0) & (ww < w), idx, c * h * w).reshape(oh * ow, c * kh * kw)
    flat = b.node("Flatten", [x], f"{n.name}_flat", axis=1)
    if ph or pw:
        flat = b.node("Pad", [flat, b.const(f"{n.name}_pads", np.array([0, 0, 0, 1], np.int64))], f"{n.name}_pad")
    cols = b.node("Gather", [flat, b.const(f"{n.name}_im2col", idx.astype(np.int32 if idx.max() < 2**31 else
                                                                         np.int64))], f"{n.name}_cols", axis=1)
    y = matmul_nbits(b, n, cols, op.weight.reshape(op.out_channels, -1))  # (N, OH*OW, C_out)
    y = b.node("Transpose", [y], f"{n.name}_chw", perm=[0, 2, 1])
    return b.node("Reshape", [y, b.const(f"{n.name}_shape", np.array([0, op.out_channels, oh, ow], np.int64))],
                  f"{n.name}_conv")


def _conv2d(b: _Builder, n: Node, xs: list[str]) -> str:
    op = n.op
    if b.fmt == "nbits" and b.conv_form == "im2col" and op.groups == 1:
        return _conv2d_im2col(b, n, xs[0])
    (ph, pw), (sh, sw) = op.padding, op.stride
    return b.node("Conv", [xs[0], b.weight(n), b.bias(n)], f"{n.name}_conv", kernel_shape=list(op.kernel),
                  strides=[sh, sw], pads=[ph, pw, ph, pw], group=op.groups)


def _affine(b: _Builder, n: Node, xs: list[str]) -> str:
    """x * scale + bias per channel (axis 1 of the batch), the reference's float32 operations."""
    ndim = len(b.shapes[n.inputs[0]])
    view = (-1,) + (1,) * (ndim - 1)
    y = b.node("Mul", [xs[0], b.const(f"{n.name}_scale", n.op.scale.astype(np.float32).reshape(view))],
               f"{n.name}_mul")
    return b.node("Add", [y, b.const(f"{n.name}_bias", n.op.bias.astype(np.float32).reshape(view))], f"{n.name}_add")


def _pool_attrs(op) -> dict:
    (ph, pw) = op.padding
    return {"kernel_shape": list(op.kernel), "strides": list(op.stride), "pads": [ph, pw, ph, pw]}


def _avgpool2d(b: _Builder, n: Node, xs: list[str]) -> str:
    # count_include_pad=1: divide by the full window, as torch's default does; 0: by the real inputs
    return b.node("AveragePool", xs, f"{n.name}_avgpool", count_include_pad=int(n.op.count_include_pad),
                  **_pool_attrs(n.op))


def _maxpool2d(b: _Builder, n: Node, xs: list[str]) -> str:
    # padding never wins: as -inf; ceil_mode as torch's (the last window may hang over the end)
    return b.node("MaxPool", xs, f"{n.name}_maxpool", ceil_mode=int(n.op.ceil_mode), **_pool_attrs(n.op))


# -- elementwise functions: opset-13 operators in the reference's own float32 order ---------------------------
def _scalar(b: _Builder, n: Node, role: str, v: float) -> str:
    return b.const(f"{n.name}_{role}", np.array(v, np.float32))


def _clip_values(b: _Builder, n: Node, x: str, low: float | None, high: float | None, stem: str) -> str:
    lo = _scalar(b, n, f"{stem}_low", low) if low is not None else ""
    hi = _scalar(b, n, f"{stem}_high", high) if high is not None else ""
    return b.node("Clip", [x, lo, hi], f"{n.name}_{stem}")


def _hardsigmoid_parts(b: _Builder, n: Node, x: str) -> str:
    """min(max(x + 3, 0), 6) / 6, as torch and the reference compute it."""
    t = b.node("Add", [x, _scalar(b, n, "three", 3.0)], f"{n.name}_plus3")
    return _clip_values(b, n, t, 0.0, 6.0, "relu6")


def _hardswish(b: _Builder, n: Node, xs: list[str]) -> str:
    t = b.node("Mul", [xs[0], _hardsigmoid_parts(b, n, xs[0])], f"{n.name}_mul")
    return b.node("Div", [t, _scalar(b, n, "six", 6.0)], f"{n.name}_hardswish")


def _hardsigmoid(b: _Builder, n: Node, xs: list[str]) -> str:
    return b.node("Div", [_hardsigmoid_parts(b, n, xs[0]), _scalar(b, n, "six", 6.0)], f"{n.name}_hardsigmoid")


def _gelu(b: _Builder, n: Node, xs: list[str]) -> str:
    x = xs[0]
    if n.op.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = b.node("Mul", [b.node("Mul", [x, x], f"{n.name}_sq"), x], f"{n.name}_cube")
        inner = b.node("Add", [x, b.node("Mul", [cube, _scalar(b, n, "c", 0.044715)], f"{n.name}_c3")], f"{n.name}_in")
        t = b.node("Tanh", [b.node("Mul", [inner, _scalar(b, n, "k", float(np.sqrt(2 / np.pi)))], f"{n.name}_k")],
                   f"{n.name}_tanh")
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = b.node("Erf", [b.node("Mul", [x, _scalar(b, n, "rsqrt2", float(1 / np.sqrt(2)))], f"{n.name}_s")],
                   f"{n.name}_erf")
    one = b.node("Add", [t, _scalar(b, n, "one", 1.0)], f"{n.name}_1p")
    return b.node("Mul", [b.node("Mul", [x, one], f"{n.name}_x"), _scalar(b, n, "half", 0.5)], f"{n.name}_gelu")


def _scale_shift(b: _Builder, n: Node, xs: list[str]) -> str:
    y = xs[0]
    if n.op.mul != 1.0:
        y = b.node("Mul", [y, _scalar(b, n, "mul", n.op.mul)], f"{n.name}_mul")
    if n.op.add != 0.0:
        y = b.node("Add", [y, _scalar(b, n, "add", n.op.add)], f"{n.name}_add")
    return y if y != xs[0] else b.node("Identity", [y], f"{n.name}_identity")


def _slice(b: _Builder, n: Node, xs: list[str]) -> str:
    op = n.op
    ints = [b.const(f"{n.name}_{k}", np.array([v], np.int64)) for k, v in
            (("starts", op.start), ("ends", op.stop), ("axes", op.axis + 1))]
    return b.node("Slice", [xs[0], *ints], f"{n.name}_slice")


def _add(b: _Builder, n: Node, xs: list[str]) -> str:
    y = xs[0]
    for x in xs[1:]:  # left to right, the reference's summation order
        y = b.node("Add", [y, x], f"{n.name}_add")
    return y


HANDLERS: dict[str, Callable[[_Builder, Node, list[str]], str]] = {
    "dense": _dense,
    "conv2d": _conv2d,
    "affine": _affine,
    "avgpool2d": _avgpool2d,
    "avgpool2d_exclude_pad": _avgpool2d,
    "maxpool2d": _maxpool2d,
    "add": _add,
    "concat": lambda b, n, xs: b.node("Concat", xs, f"{n.name}_concat", axis=1),
    "relu": lambda b, n, xs: b.node("Relu", xs, f"{n.name}_relu"),
    "flatten": lambda b, n, xs: b.node("Flatten", xs, f"{n.name}_flatten", axis=1),
    "clip": lambda b, n, xs: _clip_values(b, n, xs[0], n.op.low, n.op.high, "clip"),
    "hardswish": _hardswish,
    "hardsigmoid": _hardsigmoid,
    "sigmoid": lambda b, n, xs: b.node("Sigmoid", xs, f"{n.name}_sigmoid"),
    "silu": lambda b, n, xs: b.node("Mul", [xs[0], b.node("Sigmoid", xs, f"{n.name}_sigmoid")], f"{n.name}_silu"),
    "tanh": lambda b, n, xs: b.node("Tanh", xs, f"{n.name}_tanh"),
    "gelu": _gelu,
    "scale_shift": _scale_shift,
    "mul": lambda b, n, xs: b.node("Mul", xs, f"{n.name}_mul"),
    "reshape": lambda b, n, xs: b.node("Reshape", [xs[0], b.const(f"{n.name}_shape", np.array(
        [0, *n.op.shape], np.int64))], f"{n.name}_reshape"),
    "transpose": lambda b, n, xs: b.node("Transpose", xs, f"{n.name}_transpose",
                                         perm=[0, *(p + 1 for p in n.op.perm)]),
    "slice": _slice,
}


def build_graph(model: TernaryModel, fmt: str = "int2", metadata: dict[str, str] | None = None,
                nbits_block: int = NBITS_BLOCK, conv_form: str = "conv",
                nbits_min_weights: int = NBITS_MIN_WEIGHTS) -> onnx.ModelProto:
    """The ONNX model for `model` (validated first). `fmt` is resolved with `resolve_format`; for `nbits`,
    dense layers with fewer than `nbits_min_weights` weights keep the `int2-cast` form (0: none do)."""
    model.validate()
    fmt = resolve_format(model, fmt)
    if nbits_block < 16 or nbits_block & (nbits_block - 1):
        raise ArtifactError(f"MatMulNBits block size must be a power of two >= 16, got {nbits_block}")
    handlers = [handler(HANDLERS, n.op, "ONNX", where=f"node {n.name}") for n in model.nodes]  # refuse first
    if conv_form not in CONV_FORMS:
        raise ArtifactError(f"unknown conv form {conv_form!r}; use one of {', '.join(CONV_FORMS)}")
    b = _Builder(model, fmt, nbits_block, conv_form, nbits_min_weights)
    shape = tuple(int(d) for d in model.input.shape)
    mean, std = _compact(model.input.mean), _compact(model.input.std)
    # same float32 operations as InputSpec.normalise, so the graph's first activation matches the reference
    x = b.node("Sub", [INPUT_NAME, b.const("input_mean", mean)], "normalise_sub")
    values = {INPUT: b.node("Div", [x, b.const("input_std", std)], "normalise_div")}
    for n, fn in zip(model.nodes, handlers, strict=True):
        values[n.name] = fn(b, n, [values[i] for i in n.inputs])
    b.nodes.append(helper.make_node("Identity", [values[model.nodes[-1].name]], [OUTPUT_NAME], name="output"))
    graph = helper.make_graph(
        b.nodes, "ternkit_model",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", model.num_classes])],
        b.inits)
    opset, ir = _OPSET[fmt]
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if b.contrib else [])
    m = helper.make_model(graph, opset_imports=opsets, producer_name="ternkit",
                          doc_string=f"ternkit model exported with {fmt} weights; input is raw (normalised in graph)")
    m.ir_version = ir
    meta = {
        "ternkit.weights": weight_format(model, fmt),
        "ternkit.input_name": INPUT_NAME,
        "ternkit.output_name": OUTPUT_NAME,
        "ternkit.input_shape": json.dumps(list(shape)),
        "ternkit.labels": json.dumps([str(x) for x in model.labels]),
        "ternkit.normalisation": json.dumps(_norm_record(mean, std)),
    }
    if model.task != "classify":  # outputs are values in the data's units, not class scores
        meta["ternkit.task"] = model.task
    if b.contrib:
        meta["ternkit.requires"] = json.dumps({"contrib_ops": NBITS_OPS, "runtime": "onnxruntime",
                                               "onnxruntime": f">={NBITS_MIN_ORT}"})
    helper.set_model_props(m, {**meta, **(metadata or {})})
    return m


NBITS_MIN_ORT = "1.20"  # placeholder, set after checking onnxruntime's history
