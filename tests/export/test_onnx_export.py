"""ONNX export: formats, storage, checker, metadata, runtime parity on hand-built models (real onnxruntime)."""

import json

import numpy as np
import onnx
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import ArtifactError, Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel
from ternkit.core.io import pack_ints
from ternkit.export import OnnxModel, export_onnx
from ternkit.export.onnx.graph import build_graph
from ternkit.export.onnx.infer import make_session

MAKERS = {"mlp": lambda: random_mlp((20, 32, 5), seed=3), "cnn": random_cnn}


def _x(model, n=64, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *model.input.shape)) * 2 * model.input.std + model.input.mean).astype(np.float32)


def _weights(path):
    m = onnx.load(str(path))
    return {t.name: t for t in m.graph.initializer if "weight" in t.name}


def test_int2_initializers_hold_the_tern_packing(tmp_path):
    model = random_mlp((784, 256, 10))
    r = export_onnx(model, tmp_path / "m.onnx")
    m = onnx.load(str(r.path))
    assert (r.format, m.ir_version, m.opset_import[0].version) == ("int2", 11, 25)
    ws = [t for t in m.graph.initializer if "weight_q" in t.name]
    assert [t.data_type for t in ws] == [onnx.TensorProto.INT2] * 2
    for t, layer in zip(ws, model.weight_layers, strict=True):
        assert list(t.dims) == list(layer.weight.shape)
        assert t.raw_data == pack_ints(layer.weight, 2).tobytes()  # 2 bits per weight, nothing else
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("DequantizeLinear") == 2 and ops.count("Gemm") == 2 and "MatMul" not in ops
    assert "Relu" in ops and ops[:2] == ["Sub", "Div"]


def test_sizes_int2_int8_float(tmp_path):
    model = random_mlp((784, 256, 10))
    size = {f: export_onnx(model, tmp_path / f"{f}.onnx", f).size for f in ("int2", "int8", "float")}
    assert size["float"] > 800_000
    assert size["int2"] * 14 <= size["float"]
    assert size["int2"] * 3 < size["int8"] < size["float"]
    assert all((tmp_path / f"{f}.onnx").stat().st_size == size[f] for f in size)


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("fmt", ["int2", "int2-cast", "int8", "float"])
def test_runtime_matches_reference(tmp_path, name, fmt):
    model = MAKERS[name]()
    r = export_onnx(model, tmp_path / "m.onnx", fmt)
    onnx.checker.check_model(onnx.load(str(r.path)), full_check=True)
    x = _x(model)
    ref = model.forward(x)
    out = OnnxModel(r.path).forward(x)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-4
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    assert r.max_abs_diff is not None and r.max_abs_diff < 1e-4


def test_per_layer_and_per_channel_scales():
    model = random_mlp((12, 8, 4), seed=5)
    model.layers[0].scale = np.array([0.37], np.float32)  # per layer -> scalar scale, no axis needed
    g = build_graph(model)
    scales = [t for t in g.graph.initializer if "scale" in t.name]
    assert [list(t.dims) for t in scales] == [[], [4]]
    x = _x(model)
    sess = make_session(g.SerializeToString())
    assert np.abs(sess.run(None, {"input": x})[0] - model.forward(x)).max() < 1e-4


def test_more_levels_use_int4(tmp_path):
    rng = np.random.default_rng(0)
    layer = Dense(rng.integers(-3, 4, size=(6, 10)).astype(np.int8), np.full(6, 0.1, np.float32),
                  np.zeros(6, np.float32))
    model = TernaryModel([layer], InputSpec((10,), np.zeros(10, np.float32), np.ones(10, np.float32)),
                         list("abcdef"), levels=3)
    r = export_onnx(model, tmp_path / "m.onnx")
    assert r.format == "int4"
    assert _weights(r.path)["layer0_weight_q"].data_type == onnx.TensorProto.INT4
    x = _x(model)
    assert np.abs(OnnxModel(r.path).forward(x) - model.forward(x)).max() < 1e-4


def test_dynamic_batch_and_metadata(tmp_path):
    model = random_cnn()
    r = export_onnx(model, tmp_path / "m.onnx")
    m = onnx.load(str(r.path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["ternkit.labels"]) == model.labels
    assert meta["ternkit.input_name"] == m.graph.input[0].name and meta["ternkit.output_name"] == m.graph.output[0].name
    norm = json.loads(meta["ternkit.normalisation"])
    assert norm["mean"] == [8.0] and norm["std"] == [4.0] and norm["in_graph"]
    om = OnnxModel(r.path)
    assert om.labels == model.labels and om.input_shape == (1, 8, 8)
    for n in (1, 3, 300):
        assert om.forward(_x(model, n)).shape == (n, 10)


def test_normalisation_is_in_the_graph(tmp_path):
    model = random_mlp((6, 8, 3), seed=2)
    model.input = InputSpec((6,), np.arange(6, dtype=np.float32) * 10, np.arange(1, 7, dtype=np.float32))
    r = export_onnx(model, tmp_path / "m.onnx")
    x = _x(model)
    assert np.abs(OnnxModel(r.path).forward(x) - model.forward(x)).max() < 1e-4
    # feeding normalised data would be wrong: the graph really normalises
    assert np.abs(OnnxModel(r.path).forward(model.input.normalise(x)) - model.forward(x)).max() > 1e-2


def test_float_artifact_exports_as_float(tmp_path):
    model = random_mlp(kind="float")
    r = export_onnx(model, tmp_path / "m.onnx", "int2")
    assert r.format == "float"
    m = onnx.load(str(r.path))
    assert "DequantizeLinear" not in [n.op_type for n in m.graph.node]
    x = _x(model)
    assert np.abs(OnnxModel(r.path).forward(x) - model.forward(x)).max() < 1e-5


def test_unsupported_layer_and_bad_weights_write_nothing(tmp_path):
    class Pool:
        kind = "maxpool"

        def forward(self, x):
            return x

        def out_shape(self, s):
            return s

    model = random_cnn()
    model.layers = [model.layers[0], Pool(), *model.layers[1:]]
    with pytest.raises(ArtifactError, match="Pool"):
        export_onnx(model, tmp_path / "m.onnx")
    bad = random_mlp()
    bad.layers[0].weight[0, 0] = 2
    with pytest.raises(ArtifactError, match="outside"):
        export_onnx(bad, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_conv_padding_stride(tmp_path):
    rng = np.random.default_rng(4)
    conv = Conv2d(rng.integers(-1, 2, size=(3, 2, 3, 2)).astype(np.int8), rng.uniform(0.1, 1, 3).astype(np.float32),
                  rng.normal(size=3).astype(np.float32), stride=(1, 2), padding=(2, 0))
    spec = InputSpec((2, 7, 9), np.zeros((2, 1, 1), np.float32), np.ones((2, 1, 1), np.float32))
    shape = conv.out_shape((2, 7, 9))
    dense = Dense(rng.integers(-1, 2, size=(4, int(np.prod(shape)))).astype(np.int8), np.ones(1, np.float32),
                  np.zeros(4, np.float32))
    model = TernaryModel([conv, ReLU(), Flatten(), dense], spec, list("wxyz"))
    r = export_onnx(model, tmp_path / "m.onnx")
    x = _x(model)
    assert np.abs(OnnxModel(r.path).forward(x) - model.forward(x)).max() < 1e-4


def test_cast_form_keeps_int2_storage(tmp_path):
    model = random_cnn()
    r = export_onnx(model, tmp_path / "m.onnx", "int2-cast")
    m = onnx.load(str(r.path))
    assert {t.data_type for t in _weights(r.path).values() if "weight_q" in t.name} == {onnx.TensorProto.INT2}
    ops = [n.op_type for n in m.graph.node]
    assert "DequantizeLinear" not in ops and ops.count("Cast") == 2 and ops.count("Mul") == 2
    assert r.size <= export_onnx(model, None, "int2").size + 200


def test_runtime_check_rejects_what_the_runtime_cannot_run_or_gets_wrong():
    from ternkit.core import TernkitError
    from ternkit.export.onnx.export import check_runtime, onnx_bytes

    model = random_cnn()
    m = build_graph(model)
    m.opset_import[0].version = 99  # an opset this onnxruntime does not have: a stand-in for an old runtime
    with pytest.raises(TernkitError, match="cannot run the int2 export.*--int8"):
        check_runtime(model, m.SerializeToString(), "int2")
    other, _ = onnx_bytes(random_cnn(seed=9))  # a valid file whose logits are not this model's
    with pytest.raises(TernkitError, match="disagrees"):
        check_runtime(model, other, "int2")
    assert check_runtime(model, onnx_bytes(model)[0], "int2") < 1e-4
