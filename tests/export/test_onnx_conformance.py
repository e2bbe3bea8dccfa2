"""ONNX conformance over every registered operation (`op_examples.MODELS`): each example model, exported in
every format, runs in real onnxruntime and agrees with `TernaryModel.forward`; an operation without an ONNX
handler is refused in one line."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from op_examples import MODELS, example_input, example_model

from ternkit.core import INPUT, Node, TernaryModel, UnsupportedError
from ternkit.core.ops import OPS, Op
from ternkit.export import OnnxModel, export_onnx
from ternkit.export.onnx.graph import HANDLERS, build_graph

STANDARD = ("int2", "int2-cast", "int8", "float")


def _inputs(model, n=400):
    return example_input(model, n, seed=5)


def test_every_registered_operation_has_a_handler_and_an_example():
    assert set(HANDLERS) == set(OPS)
    kinds = {n.op.kind for name in MODELS for n in example_model(name).nodes}
    assert kinds == set(OPS)


@pytest.mark.parametrize("mode", ["exact", "stock"])
@pytest.mark.parametrize("fmt", STANDARD)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_standard_formats_agree(tmp_path, name, fmt, mode):
    model = example_model(name)
    r = export_onnx(model, tmp_path / "m.onnx", fmt)
    x = _inputs(model)
    ref = model.forward(x)
    out = OnnxModel(r.path, mode=mode).forward(x)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.999
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(out - ref).max() <= (1e-4 if mode == "exact" else 2e-2) * scale


@pytest.mark.parametrize("name", sorted(MODELS))
def test_nbits_agrees_within_int8_activation_error(tmp_path, name):
    """MatMulNBits quantises activations to int8 per block: logits move by < 5e-2 of the largest, and the
    argmax may flip only where the reference's top two logits are that close (a near tie)."""
    model = example_model(name)
    r = export_onnx(model, tmp_path / "m.onnx", "nbits", nbits_min_weights=0)  # every dense layer: the kernel
    assert r.format == "int2-nbits"
    ops = {n.op_type for n in onnx.load(str(r.path)).graph.node}
    assert "MatMulNBits" in ops and "Gemm" not in ops
    x = _inputs(model)
    ref = model.forward(x)
    out = OnnxModel(r.path).forward(x)
    scale = max(1.0, float(np.abs(ref).max()))
    err = np.abs(out - ref).max()
    assert 1e-5 * scale < err <= 5e-2 * scale  # int8 activations really ran, and stayed close
    top2 = np.sort(ref, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 2 * err
    agree = out.argmax(1) == ref.argmax(1)
    assert decided.mean() > 0.8 and agree[decided].all()
    assert agree.mean() >= 0.98


@pytest.mark.parametrize("name", ["conv2d", "conv2d-rect", "add", "concat"])
def test_nbits_im2col_conv_form(name):
    """The measured alternative for convolutions (im2col -> MatMulNBits) computes the same function."""
    from ternkit.export.onnx.infer import make_session

    model = example_model(name)
    g = build_graph(model, "nbits", conv_form="im2col")
    assert "Conv" not in {n.op_type for n in g.graph.node}
    x = _inputs(model)
    ref = model.forward(x)
    out = make_session(g.SerializeToString()).run(None, {"input": x})[0]
    assert np.abs(out - ref).max() <= 5e-2 * max(1.0, float(np.abs(ref).max()))


def test_graph_follows_the_nodes():
    """A residual model's ONNX graph has the branch: the Add reads the stem's Relu, not the previous node."""
    model = example_model("add")
    g = build_graph(model)
    by_out = {n.output[0]: n for n in g.graph.node}
    add = next(n for n in g.graph.node if n.op_type == "Add")
    assert sorted(by_out[i].op_type for i in add.input) == ["Conv", "Relu"]


@dataclass(eq=False)
class _Mystery(Op):
    kind: ClassVar[str] = "mystery"

    def out_shape(self, *shapes):
        return tuple(shapes[0])

    def forward(self, *xs):
        return xs[0]


def test_operation_without_handler_is_refused_in_one_line(tmp_path):
    base = example_model("dense")
    nodes = [Node("m", _Mystery(), (INPUT,))] + [Node(n.name, n.op, ("m",) if n.inputs == (INPUT,) else n.inputs)
                                                 for n in base.nodes]
    model = TernaryModel(nodes, base.input, base.labels)
    model.validate()
    for fmt in (*STANDARD, "nbits"):
        with pytest.raises(UnsupportedError) as e:
            export_onnx(model, tmp_path / "m.onnx", fmt)
        assert "mystery" in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
