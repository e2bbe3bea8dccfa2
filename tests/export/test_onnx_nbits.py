"""`--nbits`: dense layers as onnxruntime's MatMulNBits (bits=2), packed as the contrib operator specifies, run
in real onnxruntime; the export check refuses what the runtime cannot run, gets wrong, or runs on its slow
float path."""

import json

import numpy as np
import onnx
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import TernkitError
from ternkit.export import OnnxModel, export_onnx, write_bundle
from ternkit.export.onnx.export import check_runtime, onnx_bytes
from ternkit.export.onnx.graph import NBITS_MIN_WEIGHTS, NBITS_OPS, build_graph, nbits_pack


def _x(model, n=256, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *model.input.shape)) * 2 * model.input.std + model.input.mean).astype(np.float32)


def test_packing_follows_the_operator_spec():
    """codes = trit + 2, four per byte low bits first, [N, K/block, block/4], K padded with the zero point."""
    w = np.array([[-1, 0, 1, 1, 0], [1, 1, -1, 0, -1]], np.int8)
    packed, bits = nbits_pack(w, levels=1, block=16)
    assert bits == 2 and packed.shape == (2, 1, 4) and packed.dtype == np.uint8
    codes = (packed.reshape(2, 4, 1) >> np.array([0, 2, 4, 6], np.uint8)) & 3
    codes = codes.reshape(2, 16)
    assert codes[:, :5].tolist() == (w + 2).tolist() and (codes[:, 5:] == 2).all()
    assert int(packed[0, 0, 0]) == 1 | 2 << 2 | 3 << 4 | 3 << 6


def test_graph_metadata_and_size():
    model = random_mlp((784, 256, 10))
    m = build_graph(model, "nbits")
    nodes = [n for n in m.graph.node if n.op_type == "MatMulNBits"]
    # per-layer rule: 784x256 (>= NBITS_MIN_WEIGHTS) in MatMulNBits, the 10-wide output layer as Cast -> Gemm
    assert len(nodes) == 1 and {n.domain for n in nodes} == {"com.microsoft"}
    assert [n.op_type for n in m.graph.node].count("Gemm") == 1
    attrs = {a.name: a.i for a in nodes[0].attribute}
    assert attrs == {"K": 784, "N": 256, "bits": 2, "block_size": 128, "accuracy_level": 4}
    inits = {t.name: t for t in m.graph.initializer}
    assert list(inits["layer0_weight_nbits"].dims) == [256, 7, 32]  # 784 padded to 896 = 7 blocks of 128
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["ternkit.weights"] == "int2-nbits"
    assert json.loads(meta["ternkit.requires"])["contrib_ops"] == NBITS_OPS
    float_size = len(onnx_bytes(model, "float")[0])
    assert len(m.SerializeToString()) * 11 < float_size  # 2 bits + per-block scales


@pytest.mark.parametrize("make", [lambda: random_mlp((300, 64, 10), seed=2), random_cnn])
def test_runs_and_agrees(tmp_path, make):
    model = make()
    r = export_onnx(model, tmp_path / "m.onnx", "nbits", nbits_min_weights=0)
    x = _x(model)
    ref, out = model.forward(x), OnnxModel(r.path).forward(x)
    scale = max(1.0, float(np.abs(ref).max()))
    assert 1e-5 * scale < np.abs(out - ref).max() < 5e-2 * scale
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.98
    assert 0 < r.max_abs_diff < 5e-2 * scale


@pytest.mark.parametrize("min_weights", [NBITS_MIN_WEIGHTS, 0])
def test_per_layer_rule(min_weights):
    """Dense layers below the threshold keep the Cast -> Gemm form; the rest, and only they, are MatMulNBits;
    a model with no layer above it is exact (float at load) and still passes the export check."""
    model = random_mlp((784, 256, 64, 10), seed=5)  # 200,704 / 16,384 / 640 weights
    g = build_graph(model, "nbits", nbits_min_weights=min_weights)
    ks = [next(a.i for a in n.attribute if a.name == "K") for n in g.graph.node if n.op_type == "MatMulNBits"]
    assert ks == ([784] if min_weights else [784, 256, 64])
    small = random_mlp((300, 64, 10), seed=2)  # every layer below the threshold
    data, fmt = onnx_bytes(small, "nbits")
    assert "MatMulNBits" not in {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert check_runtime(small, data, fmt) < 1e-4


def test_more_levels_use_4_bits(tmp_path):
    from ternkit.core import Dense, InputSpec, TernaryModel

    rng = np.random.default_rng(0)
    layer = Dense(rng.integers(-3, 4, size=(6, 200)).astype(np.int8), np.full(6, 0.05, np.float32),
                  np.zeros(6, np.float32))
    model = TernaryModel([layer], InputSpec((200,), np.zeros(200, np.float32), np.ones(200, np.float32)),
                         list("abcdef"), levels=3)
    r = export_onnx(model, tmp_path / "m.onnx", "nbits", nbits_min_weights=0)
    assert r.format == "int4-nbits"
    node = next(n for n in onnx.load(str(r.path)).graph.node if n.op_type == "MatMulNBits")
    assert {a.name: a.i for a in node.attribute}["bits"] == 4


def _edit(data: bytes, **attrs) -> bytes:
    m = onnx.load_from_string(data)
    for n in m.graph.node:
        if n.op_type == "MatMulNBits":
            if "domain" in attrs:
                n.domain = attrs["domain"]
            for a in n.attribute:
                if a.name in attrs:
                    a.i = attrs[a.name]
    if "domain" in attrs:
        m.opset_import.append(onnx.helper.make_opsetid(attrs["domain"], 1))
    return m.SerializeToString()


def test_check_refuses_missing_operator_wrong_results_and_slow_fallback():
    model = random_mlp((300, 64, 10), seed=2)
    data, fmt = onnx_bytes(model, "nbits", nbits_min_weights=0)
    assert check_runtime(model, data, fmt) > 0
    with pytest.raises(TernkitError, match="cannot run the int2-nbits export.*contrib"):
        check_runtime(model, _edit(data, domain="org.example"), fmt)  # a runtime without the operator
    with pytest.raises(TernkitError, match="disagrees"):
        check_runtime(model, onnx_bytes(random_mlp((300, 64, 10), seed=3), "nbits", nbits_min_weights=0)[0], fmt)
    # accuracy_level 0 is onnxruntime's float fallback: what a runtime without the 2-bit int8 kernel runs
    with pytest.raises(TernkitError, match="no int8 kernel"):
        check_runtime(model, _edit(data, accuracy_level=0), fmt)


def test_eval_simulate_and_bundle(tmp_path, capsys):
    import subprocess
    import sys

    from ternkit.cli import main
    from ternkit.core import save_model

    model = random_cnn(seed=4)  # 1x8x8 input, 10 classes: the digits shape
    save_model(model, tmp_path / "m.tern")
    assert main(["export", "onnx", str(tmp_path / "m.tern"), "--nbits", "-o", str(tmp_path / "m.onnx"),
                 "--bundle", str(tmp_path / "edge")]) == 0
    assert "int2-nbits weights" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "m.onnx"), "--dataset", "digits", "--json"]) == 0
    onnx_acc = json.loads(capsys.readouterr().out)["accuracy"]
    assert main(["eval", str(tmp_path / "m.tern"), "--dataset", "digits", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["accuracy"] - onnx_acc) < 0.01
    assert main(["simulate", str(tmp_path / "m.tern"), "--backend", "onnx", "--nbits", "--dataset", "digits",
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["weights"] == "int2-nbits" and rec["agreement"] >= 0.99
    src = (tmp_path / "edge" / "predict.py").read_text()
    import onnxruntime as ort

    assert f'NEEDS_ONNXRUNTIME = "{ort.__version__}"' in src
    x = _x(model, 20)
    np.save(tmp_path / "x.npy", x)
    p = subprocess.run([sys.executable, "-I", str(tmp_path / "edge" / "predict.py"), str(tmp_path / "x.npy")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = [int(line.split(",")[1]) for line in p.stdout.split()]
    assert np.mean(np.array(got) == model.predict(x)) >= 0.95
    # a runtime older than the stated one is refused in one line
    (tmp_path / "edge" / "predict.py").write_text(src.replace(f'= "{ort.__version__}"', '= "99.0"'))
    p = subprocess.run([sys.executable, "-I", str(tmp_path / "edge" / "predict.py"), str(tmp_path / "x.npy")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "needs onnxruntime >= 99.0" in p.stderr and len(p.stderr.splitlines()) == 1
    assert write_bundle(model, tmp_path / "edge", "nbits").format == "int2-nbits"
