"""Build the ONNX graph of a `TernaryModel` in one of four weight formats.

- `int2` (default): ternary weights as packed INT2 initializers (2 bits each on disk, the same bytes as the
  `.tern` file) -> `DequantizeLinear` with the layer's scale -> `Gemm`/`Conv` with the bias. ONNX IR 11,
  opset 25. Models with more levels (k <= 7) use INT4 the same way.
- `int2-cast`: the same INT2 initializers, but `Cast` to float and `Mul` by the scale instead of
  `DequantizeLinear`. Plain constant folding removes both at load, so it runs at float speed even in a
  runtime with default session options (which keep `DequantizeLinear` and run it on every call).
- `int8`: the same QDQ graph with int8 initializers, IR 7 / opset 13, for runtimes without INT2.
- `float`: plain float32 weights (scale folded in), IR 7 / opset 13: the size and speed baseline.

Dense layers use `Gemm(transB=1)` on the (out, in) weight with a per-output scale on axis 0, never
`DequantizeLinear -> MatMul`: onnxruntime 1.32 rewrites the latter (with default optimisations) into
`MatMulNBits`, which returned wrong logits for INT2 weights when measured here (see docs/onnx.md).
Input normalisation `(x - mean) / std` runs inside the graph, so callers feed raw samples.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ternkit.core.errors import ArtifactError
from ternkit.core.io import pack_ints
from ternkit.core.model import Conv2d, Dense, Flatten, ReLU, TernaryModel

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "build_graph", "resolve_format", "weight_format"]

FORMATS = ("int2", "int2-cast", "int8", "float")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_OPSET = {"int2": (25, 11), "int2-cast": (25, 11), "int8": (13, 7), "float": (13, 7)}  # format -> (opset, IR version)


def resolve_format(model: TernaryModel, fmt: str) -> str:
    """The format actually written: a float artifact has no integer weights, so it always exports as float."""
    if fmt not in FORMATS:
        raise ArtifactError(f"unknown ONNX weight format {fmt!r}; use one of {', '.join(FORMATS)}")
    return "float" if model.kind == "float" else fmt


def weight_format(model: TernaryModel, fmt: str) -> str:
    """Name of the weights as stored: int2 (ternary), int4 (more levels), int8 or float."""
    fmt = resolve_format(model, fmt)
    return fmt.replace("int2", "int4") if fmt.startswith("int2") and model.levels > 1 else fmt


def _low_bit_tensor(name: str, q: np.ndarray, levels: int) -> TensorProto:
    """INT2 (ternary) or INT4 initializer; raw_data is the `.tern` packing (two's complement, low bits first)."""
    bits, dtype = (2, TensorProto.INT2) if levels == 1 else (4, TensorProto.INT4)
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(q.shape)
    t.raw_data = pack_ints(q, bits).tobytes()
    return t


def _scale(layer: Dense | Conv2d) -> np.ndarray:
    """Per-layer scale as a scalar (no axis needed), per-channel as a 1-D tensor on axis 0."""
    s = np.ascontiguousarray(layer.scale, dtype=np.float32)
    return s.reshape(()) if s.size == 1 else s


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


def _scale_b(layer: Dense | Conv2d) -> np.ndarray:
    """Scale shaped to broadcast over the weight's output axis (axis 0)."""
    s = layer.scale.astype(np.float32)
    return s.reshape((-1,) + (1,) * (layer.weight.ndim - 1))


class _Builder:
    def __init__(self, model: TernaryModel, fmt: str) -> None:
        self.model, self.fmt = model, fmt
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, name: str, arr: np.ndarray) -> str:
        """An initializer under its own stable name (layer index + role), as tools and tests look them up."""
        arr = np.asarray(arr)  # not ascontiguousarray: it turns a 0-d scale into shape (1,)
        self.inits.append(numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def weight(self, i: int, layer: Dense | Conv2d) -> str:
        """Name of the float weight tensor the compute node reads (dequantised in the graph unless float)."""
        if self.fmt == "float":
            w = layer.weight.astype(np.float32) * _scale_b(layer)
            return self.const(f"layer{i}_weight", w.astype(np.float32))
        q = layer.weight.astype(np.int8)
        if self.fmt.startswith("int2"):
            wname = f"layer{i}_weight_q"
            self.inits.append(_low_bit_tensor(wname, q, self.model.levels))
            if self.fmt == "int2-cast":  # Cast * scale: folded at load by onnxruntime with default options
                wf = self.node("Cast", [wname], f"layer{i}_weight_f", to=TensorProto.FLOAT)
                return self.node("Mul", [wf, self.const(f"layer{i}_scale", _scale_b(layer))], f"layer{i}_weight")
        else:
            wname = self.const(f"layer{i}_weight_q", q)
        s = _scale(layer)
        inputs = [wname, self.const(f"layer{i}_scale", s)]
        if self.fmt == "int8":  # opset 13 wants an explicit zero point to carry the int8 type
            inputs.append(self.const(f"layer{i}_zero", np.zeros(s.shape, np.int8)))
        return self.node("DequantizeLinear", inputs, f"layer{i}_weight", axis=0)

    def layer(self, i: int, layer, x: str) -> str:
        if isinstance(layer, Dense):
            w, b = self.weight(i, layer), self.const(f"layer{i}_bias", layer.bias.astype(np.float32))
            return self.node("Gemm", [x, w, b], f"layer{i}_dense", transB=1)
        if isinstance(layer, Conv2d):
            w, b = self.weight(i, layer), self.const(f"layer{i}_bias", layer.bias.astype(np.float32))
            (ph, pw), (sh, sw) = layer.padding, layer.stride
            return self.node("Conv", [x, w, b], f"layer{i}_conv", kernel_shape=list(layer.kernel),
                             strides=[sh, sw], pads=[ph, pw, ph, pw])
        if isinstance(layer, Flatten):
            return self.node("Flatten", [x], f"layer{i}_flatten", axis=1)
        if isinstance(layer, ReLU):
            return self.node("Relu", [x], f"layer{i}_relu")
        raise ArtifactError(f"layer {i}: ONNX export does not support layers of type {type(layer).__name__}")


def build_graph(model: TernaryModel, fmt: str = "int2", metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model for `model` (validated first). `fmt` is resolved with `resolve_format`."""
    model.validate()
    fmt = resolve_format(model, fmt)
    b = _Builder(model, fmt)
    shape = tuple(int(d) for d in model.input.shape)
    mean, std = _compact(model.input.mean), _compact(model.input.std)
    # same float32 operations as InputSpec.normalise, so the graph's first activation matches the reference
    x = b.node("Sub", [INPUT_NAME, b.const("input_mean", mean)], "normalise_sub")
    x = b.node("Div", [x, b.const("input_std", std)], "normalise_div")
    for i, layer in enumerate(model.layers):
        x = b.layer(i, layer, x)
    b.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    graph = helper.make_graph(
        b.nodes, "ternkit_model",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", model.num_classes])],
        b.inits)
    opset, ir = _OPSET[fmt]
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ternkit",
                          doc_string=f"ternkit model exported with {fmt} weights; input is raw (normalised in graph)")
    m.ir_version = ir
    meta = {
        "ternkit.weights": weight_format(model, fmt),
        "ternkit.input_name": INPUT_NAME,
        "ternkit.output_name": OUTPUT_NAME,
        "ternkit.input_shape": json.dumps(list(shape)),
        "ternkit.labels": json.dumps([str(x) for x in model.labels]),
        "ternkit.normalisation": json.dumps(_norm_record(mean, std)),
        **(metadata or {}),
    }
    helper.set_model_props(m, meta)
    return m
