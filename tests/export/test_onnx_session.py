"""Session options: the `exact` default and onnxruntime's stock defaults both agree with the reference for
every format we write; `exact` folds the 2-bit weights at load (so runs the float graph)."""

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import ArtifactError, OptionError
from ternkit.export import OnnxModel, export_onnx
from ternkit.export.onnx.infer import SESSION_MODES, session_options


@pytest.mark.parametrize("mode", SESSION_MODES)
@pytest.mark.parametrize("fmt", ["int2", "int2-cast", "int8"])
@pytest.mark.parametrize("make", [lambda: random_mlp((64, 48, 10), seed=7), random_cnn])
def test_every_session_mode_agrees(tmp_path, mode, fmt, make):
    model = make()
    export_onnx(model, tmp_path / "m.onnx", fmt)
    x = np.random.default_rng(0).normal(size=(200, *model.input.shape)).astype(np.float32) * 3 + 4
    ref = model.forward(x)
    out = OnnxModel(tmp_path / "m.onnx", mode=mode).forward(x)
    tol = 1e-4 if mode != "stock" else 2e-2 * max(1.0, float(np.abs(ref).max()))
    assert np.abs(out - ref).max() < tol
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99


def test_exact_mode_folds_the_dequantisation(tmp_path):
    import onnx
    import onnxruntime as ort

    model = random_mlp((64, 48, 10))
    export_onnx(model, tmp_path / "m.onnx")
    ops = {}
    for mode in ("exact", "stock"):
        so = session_options(mode)
        so.optimized_model_filepath = str(tmp_path / f"{mode}.opt.onnx")
        ort.InferenceSession(str(tmp_path / "m.onnx"), so, providers=["CPUExecutionProvider"])
        ops[mode] = {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}
    assert "DequantizeLinear" not in ops["exact"]  # weights dequantised once, at load
    assert "DequantizeLinear" in ops["stock"]  # stock keeps it for fusion and runs it each call


def test_cast_form_is_folded_by_stock_options(tmp_path):
    import onnx
    import onnxruntime as ort

    model = random_cnn()
    export_onnx(model, tmp_path / "m.onnx", "int2-cast")
    so = session_options("stock")
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(tmp_path / "m.onnx"), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}
    assert not ops & {"Cast", "Mul", "DequantizeLinear"}


def test_bad_mode_and_bad_files(tmp_path):
    with pytest.raises(OptionError):
        session_options("fast")
    with pytest.raises(ArtifactError, match="no such file"):
        OnnxModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ArtifactError, match="cannot load"):
        OnnxModel(tmp_path / "junk.onnx")
    export_onnx(random_mlp(), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError):
        OnnxModel(tmp_path / "cut.onnx")
    with pytest.raises(ArtifactError, match="expects"):
        OnnxModel(tmp_path / "m.onnx").forward(np.zeros((2, 5), np.float32))
