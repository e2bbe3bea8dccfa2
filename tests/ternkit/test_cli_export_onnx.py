"""`ternkit export onnx` and `ternkit eval model.onnx` from the command line: outputs, and bad input
(exit 2, one line, nothing written)."""

import json
import pickle
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import random_cnn, random_mlp
from safetensors.numpy import load_file, save_file

from ternkit.cli import main
from ternkit.core import save_model


@pytest.fixture
def tern(tmp_path):
    path = tmp_path / "cnn.tern"
    save_model(random_cnn(), path)
    return path


def _rewrite(src, dst, tensors=None, meta=None):
    """Re-save a .tern with edited tensors/metadata (to make hostile files)."""
    from safetensors import safe_open

    with safe_open(str(src), "np") as f:
        header = json.loads(f.metadata()["ternkit"])
    t = load_file(str(src))
    t.update(tensors or {})
    header.update(meta or {})
    save_file(t, str(dst), metadata={"ternkit": json.dumps(header)})


def _fail(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("flag,fmt,dtype", [([], "int2", onnx.TensorProto.INT2),
                                            (["--cast"], "int2-cast", onnx.TensorProto.INT2),
                                            (["--int8"], "int8", onnx.TensorProto.INT8),
                                            (["--float"], "float", onnx.TensorProto.FLOAT)])
def test_export_formats(tmp_path, tern, capsys, flag, fmt, dtype):
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(tern), "-o", str(out), *flag]) == 0
    assert f"{fmt} weights" in capsys.readouterr().out
    m = onnx.load(str(out))
    assert {t.data_type for t in m.graph.initializer if "weight" in t.name} == {dtype}
    assert {p.key: p.value for p in m.metadata_props}["ternkit.weights"] == fmt


def test_export_nbits(tmp_path, capsys):
    tern, out = tmp_path / "mlp.tern", tmp_path / "m.onnx"
    save_model(random_mlp((784, 256, 10)), tern)  # layers below NBITS_MIN_WEIGHTS (256x10) stay --cast
    assert main(["export", "onnx", str(tern), "-o", str(out), "--nbits"]) == 0
    assert "int2-nbits weights" in capsys.readouterr().out
    m = onnx.load(str(out))
    types = [n.op_type for n in m.graph.node]
    assert types.count("MatMulNBits") == 1 and "Gemm" in types  # 784x256 in MatMulNBits, 256x10 as --cast
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["ternkit.weights"] == "int2-nbits" and "MatMulNBits" in meta["ternkit.requires"]


def test_no_check_still_writes_a_valid_file(tmp_path, tern, capsys):
    assert main(["export", "onnx", str(tern), "-o", str(tmp_path / "m.onnx"), "--no-check"]) == 0
    assert "not checked" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)


def test_eval_onnx_equals_eval_tern(tmp_path, tern, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(tern), "-o", str(out)]) == 0
    capsys.readouterr()
    results = []
    for path in (tern, out):
        assert main(["eval", str(path), "--dataset", "digits", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        r.pop("model")
        results.append(r)
    assert results[0] == results[1] and results[0]["n"] == 1797


def _hostile(tmp_path, tern):
    w = load_file(str(tern))["layer0.weight"].copy()
    w[0] = 0b10  # two's complement -2: outside {-1, 0, 1}
    _rewrite(tern, tmp_path / "outside.tern", tensors={"layer0.weight": w})
    from safetensors import safe_open

    with safe_open(str(tern), "np") as f:
        nodes = json.loads(f.metadata()["ternkit"])["nodes"]
    nodes[1]["op"] = "maxpool"
    _rewrite(tern, tmp_path / "layer.tern", meta={"nodes": nodes})
    (tmp_path / "pickle.tern").write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    (tmp_path / "cut.tern").write_bytes(tern.read_bytes()[:300])
    b = load_file(str(tern))["layer0.bias"].copy()
    b[1] = np.nan
    _rewrite(tern, tmp_path / "nan.tern", tensors={"layer0.bias": b})
    return {"outside": "outside", "layer": "maxpool", "pickle": "not a ternkit model",
            "cut": "not a ternkit model", "nan": "NaN", "missing": "no such file"}


def test_bad_models_exit_2_and_write_nothing(tmp_path, tern, capsys):
    cases = _hostile(tmp_path, tern)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.onnx").write_bytes(b"previous export")
    for name, words in cases.items():
        line = _fail(capsys, ["export", "onnx", str(tmp_path / f"{name}.tern"), "-o", str(out_dir / "keep.onnx"),
                              "--bundle", str(out_dir / "bundle")])
        assert line.startswith("ternkit export: error:") and words in line, line
    # the old file is untouched; no temp files and no bundle were left behind
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.onnx"]
    assert (out_dir / "keep.onnx").read_bytes() == b"previous export"


def test_bad_options(tmp_path, tern, capsys):
    assert "give -o" in _fail(capsys, ["export", "onnx", str(tern)])
    assert ".onnx" in _fail(capsys, ["export", "onnx", str(tern), "-o", str(tmp_path / "m.txt")])
    assert _fail(capsys, ["export", "onnx", str(tern), "-o", str(tmp_path / "m.onnx"), "--int8", "--float"])
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    assert "refusing" in _fail(capsys, ["export", "onnx", str(tern), "--bundle", str(tmp_path / "stuff")])
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "m.onnx").exists()
    (tmp_path / "dir.onnx").mkdir()
    assert "directory" in _fail(capsys, ["export", "onnx", str(tern), "-o", str(tmp_path / "dir.onnx")])
    (tmp_path / "afile").write_text("x")
    assert "cannot" in _fail(capsys, ["export", "onnx", str(tern), "-o", str(tmp_path / "afile" / "m.onnx")])
    assert "cannot" in _fail(capsys, ["export", "onnx", str(tern), "--bundle", str(tmp_path / "afile" / "b")])


def test_eval_bad_onnx(tmp_path, capsys):
    (tmp_path / "junk.onnx").write_bytes(pickle.dumps([1, 2]))
    line = _fail(capsys, ["eval", str(tmp_path / "junk.onnx"), "--dataset", "digits"])
    assert "junk.onnx" in line and ("cannot load" in line or "not a readable ONNX model" in line)
    assert "no such file" in _fail(capsys, ["eval", str(tmp_path / "none.onnx"), "--dataset", "digits"])


def test_float_model_exports_float(tmp_path, capsys):
    save_model(random_mlp(kind="float"), tmp_path / "f.tern")
    assert main(["export", "onnx", str(tmp_path / "f.tern"), "-o", str(tmp_path / "f.onnx")]) == 0
    assert "float model" in capsys.readouterr().out
    m = onnx.load(str(tmp_path / "f.onnx"))
    assert "DequantizeLinear" not in {n.op_type for n in m.graph.node}


def test_real_process_exit_code(tmp_path):
    (tmp_path / "x.tern").write_bytes(b"\x00" * 7)
    p = subprocess.run([sys.executable, "-m", "ternkit", "export", "onnx", str(tmp_path / "x.tern"), "-o",
                        str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()
