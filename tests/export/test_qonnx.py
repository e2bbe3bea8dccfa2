"""The QONNX export: graph form (what hls4ml and FINN need), qonnx's own executor against the reference for every
operation it takes, refusals with hints, activation quantisation, the file and the CLI. Real qonnx, no mocks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

pytest.importorskip("qonnx", reason="needs the fpga extra (pip install 'ternkit[fpga]')")

from op_examples import MODELS, example_input, example_model  # noqa: E402

from ternkit.core import TernkitError, save_model  # noqa: E402
from ternkit.core.errors import OptionError, UnsupportedError  # noqa: E402
from ternkit.export import backends  # noqa: E402
from ternkit.export.qonnx.execute import run_qonnx, wrap  # noqa: E402
from ternkit.export.qonnx.export import TOLERANCE, export_qonnx, qonnx_model  # noqa: E402
from ternkit.export.qonnx.graph import HANDLERS, HINTS, activation_quant, build_qonnx, quantised_forward  # noqa: E402
from ternkit.export.qonnx.precision import fixed, int_bits  # noqa: E402
from ternkit.export.qonnx.prepare import prepare_for_hls4ml  # noqa: E402

KINDS = {name: [n.op.kind for n in example_model(name).nodes] for name in MODELS}
SUPPORTED = [name for name, kinds in KINDS.items() if set(kinds) <= set(HANDLERS)]
REFUSED = [name for name in MODELS if name not in SUPPORTED]


def _quants(m: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in m.graph.node if n.op_type == "Quant"]


def test_weights_are_integers_behind_a_2bit_quant_and_the_scale_is_a_mul(mlp):
    m = build_qonnx(mlp)
    assert not [n for n in m.graph.node if n.op_type == "IntQuant"]  # qonnx's cleanup folds IntQuant to float
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    quants = _quants(m)
    assert len(quants) == len(mlp.weight_layers)
    for q, op in zip(quants, mlp.weight_layers, strict=True):
        w, scale, zero, bits = (inits[i] for i in q.input)
        assert np.array_equal(w, op.weight.T.astype(np.float32))  # integers, not scale * q
        assert (float(scale), float(zero), float(bits)) == (1.0, 0.0, 2.0)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in q.attribute}
        assert attrs["signed"] == 1 and attrs["narrow"] == 1
    ops = [n.op_type for n in m.graph.node]
    i = ops.index("MatMul")
    assert ops[i + 1:i + 3] == ["Mul", "Add"]  # per-channel scale below the MatMul, then the bias
    assert m.graph.output[0].name == "logits" and "Identity" not in ops  # hls4ml loses an output behind Identity


@pytest.mark.parametrize("name", SUPPORTED)
def test_qonnx_executor_matches_the_reference(name):
    model = example_model(name)
    x = example_input(model, 8)
    m, act = qonnx_model(model)
    out = run_qonnx(wrap(m), x)
    ref = model.forward(x)
    assert np.abs(out - ref).max() <= TOLERANCE * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("name", REFUSED)
def test_refused_operations_name_themselves_and_a_hint(name):
    kind = next(k for k in KINDS[name] if k not in HANDLERS)
    with pytest.raises(UnsupportedError, match="QONNX export does not support operation") as e:
        build_qonnx(example_model(name))
    assert f"'{kind}'; {HINTS[kind]}" in str(e.value)
    assert backends()["qonnx"].refusals[kind] == HINTS[kind]


def test_float_models_are_refused():
    from conftest import random_mlp

    with pytest.raises(TernkitError, match="float model"):
        build_qonnx(random_mlp(kind="float"))


def test_normalisation_is_a_batchnorm_per_channel_and_absent_when_identity(cnn, mlp):
    ops = [n.op_type for n in build_qonnx(cnn).graph.node]
    assert ops[0] == "BatchNormalization" and "Sub" not in ops and "Div" not in ops
    assert "BatchNormalization" not in [n.op_type for n in build_qonnx(mlp).graph.node]  # mean 0, std 1


def test_activation_quant_after_each_relu_matches_its_numpy_twin(cnn):
    x = example_input(cnn, 16) * 16
    act = activation_quant(cnn, x, 8)
    m = build_qonnx(cnn, act)
    quants = _quants(m)
    assert len(quants) == len(cnn.weight_layers) + 1  # one per ReLU
    out = run_qonnx(wrap(m), x)
    twin = quantised_forward(cnn, x, act)
    assert np.abs(out - twin).max() <= 1e-5 * max(1.0, float(np.abs(twin).max()))
    assert not np.array_equal(twin, cnn.forward(x))  # the quantisation is really there
    with pytest.raises(OptionError, match="activation bits"):
        activation_quant(cnn, x, 3)


def test_cleanup_for_hls4ml_keeps_every_weight_quant(cnn):
    """qonnx's cleanup folds constants: the weight Quants must survive it as 2-bit nodes (not float tensors)."""
    w = prepare_for_hls4ml(build_qonnx(cnn))
    quants = [n for n in w.graph.node if n.op_type == "Quant"]
    assert len(quants) == len(cnn.weight_layers)
    for q in quants:
        assert float(w.get_initializer(q.input[3])) == 2.0
        assert set(np.unique(w.get_initializer(q.input[0]))) <= {-1.0, 0.0, 1.0}


def test_export_writes_only_a_checked_file(tmp_path, cnn):
    out = tmp_path / "m.qonnx.onnx"
    r = export_qonnx(cnn, out)
    assert r.max_abs_diff is not None and r.max_abs_diff <= 1e-5 * 100
    m = onnx.load(out)
    onnx.checker.check_model(m)
    assert {o.domain for o in m.opset_import} >= {"", "qonnx.custom_op.general"}
    with pytest.raises(OptionError, match=r"must end in \.onnx"):
        export_qonnx(cnn, tmp_path / "m.qonnx")
    assert not (tmp_path / "m.qonnx").exists()


def test_precision_arithmetic():
    assert int_bits(0.0) == 1 and int_bits(0.4) == 1 and int_bits(1.0) == 2 and int_bits(100.0) == 9
    assert int_bits(100.0, 1.0) == 8  # +-127 holds 100
    assert fixed(18, 3) == "fixed<18,3>" and fixed(20, 1, "RND") == "fixed<20,1,RND,SAT>"


def test_cli_export_and_bad_input(tmp_path, cnn):
    path = tmp_path / "cnn.tern"
    save_model(cnn, path)
    run = [sys.executable, "-m", "ternkit", "export", "qonnx", str(path)]
    ok = subprocess.run([*run, "-o", str(tmp_path / "c.qonnx.onnx")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "QONNX: 2-bit integer weights" in ok.stdout and "qonnx 1.0.0" in ok.stdout
    bad = subprocess.run([*run, "-o", str(tmp_path / "c.txt")], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    bits = subprocess.run([*run, "-o", str(tmp_path / "d.qonnx.onnx"), "--act-bits", "5"], capture_output=True,
                          text=True)
    assert bits.returncode == 2 and not (tmp_path / "d.qonnx.onnx").exists()


def test_grouped_convs_for_hls4ml_are_block_diagonal_and_equal():
    """hls4ml 1.3.0 reads groups only as depthwise: its graph writes a grouped conv ungrouped, zeros across
    groups, with the same outputs."""
    model = example_model("conv2d-grouped")
    x = example_input(model, 8)
    m = build_qonnx(model, for_hls4ml=True)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}["group"] == 1
    out = run_qonnx(wrap(m), x)
    assert np.abs(out - model.forward(x)).max() <= TOLERANCE * max(1.0, float(np.abs(out).max()))
    assert [a.i for a in next(n for n in build_qonnx(model).graph.node if n.op_type == "Conv").attribute
            if a.name == "group"] == [2]  # the file keeps the group for FINN
