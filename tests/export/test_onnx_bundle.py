"""Edge bundle: model.onnx + labels.json + predict.py, run as a user would (a subprocess, numpy + onnxruntime)."""

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_cnn

from ternkit.core import ArtifactError
from ternkit.export import write_bundle
from ternkit.export.onnx.bundle import BUNDLE_FILES


def _predict(bundle, *args):
    return subprocess.run([sys.executable, "-I", str(bundle / "predict.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=bundle.parent)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    model = random_cnn(seed=3)
    model.labels = [f"digit-{i}" for i in range(10)]
    d = tmp_path_factory.mktemp("b") / "edge"
    r = write_bundle(model, d)
    assert r.path == d / "model.onnx"
    return model, d


def test_bundle_files_and_imports(bundle):
    model, d = bundle
    assert sorted(p.name for p in d.iterdir()) == sorted(BUNDLE_FILES)
    assert json.loads((d / "labels.json").read_text()) == model.labels
    tree = ast.parse((d / "predict.py").read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods - {"argparse", "json", "sys", "pathlib"} == {"numpy", "onnxruntime"}


def test_predict_npy_and_csv(bundle, tmp_path):
    model, d = bundle
    x = (np.random.default_rng(0).normal(size=(40, 1, 8, 8)) * 4 + 8).astype(np.float32)
    want = [model.labels[i] for i in model.predict(x)]
    np.save(tmp_path / "x.npy", x)
    header = ",".join(f"p{i}" for i in range(64))
    np.savetxt(tmp_path / "x.csv", x.reshape(40, -1), delimiter=",", header=header, comments="", fmt="%.9g")
    for inputs in ("x.npy", "x.csv"):
        p = _predict(d, tmp_path / inputs)
        assert p.returncode == 0, p.stderr
        rows = [line.split(",") for line in p.stdout.strip().splitlines()]
        assert [r[0] for r in rows] == [str(i) for i in range(40)]
        assert [r[1] for r in rows] == want
    p = _predict(d, tmp_path / "x.npy", "--scores")
    scores = np.array([[float(v) for v in line.split(",")[2:]] for line in p.stdout.strip().splitlines()])
    assert np.abs(scores - model.forward(x)).max() < 1e-3


def test_predict_bad_input(bundle, tmp_path):
    _, d = bundle
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    (tmp_path / "text.csv").write_text("a,b\n1,x\n")
    for f in ("wrong.npy", "text.csv", "absent.npy"):
        p = _predict(d, tmp_path / f)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr


def test_bundle_replaces_only_a_bundle(tmp_path):
    model = random_cnn()
    d = tmp_path / "edge"
    write_bundle(model, d)
    write_bundle(model, d, "int8")  # replacing an earlier bundle is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError):
        write_bundle(model, tmp_path / "file")
