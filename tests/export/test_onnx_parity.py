"""Parity on a really trained model (slow): onnxruntime's argmax equals the reference on >= 99.9 % of the
5,000-image MNIST sample for every format and session mode. The full 10k test-set figure is in
docs/benchmarks.md (benchmarks/onnx.py)."""

import subprocess
import sys

import numpy as np
import pytest

from ternkit.core import load_dataset, load_model
from ternkit.export import OnnxModel, export_onnx
from ternkit.export.onnx.infer import SESSION_MODES


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.parametrize("spec", ["mlp:64", "cnn:4c5s2-8c5s2-32"])
def test_trained_model_parity(tmp_path, spec):
    tern = tmp_path / "m.tern"
    subprocess.run([sys.executable, "-m", "ternkit", "train", "--dataset", "mnist-sample", "--model", spec,
                    "--epochs", "2", "--quiet", "--out", str(tern)], check=True, capture_output=True, timeout=900)
    model = load_model(tern)
    data = load_dataset("mnist-sample")
    ref = np.concatenate([model.forward(data.x[i:i + 1000]) for i in range(0, len(data), 1000)])
    for fmt in ("int2", "int2-cast", "int8", "float"):
        export_onnx(model, tmp_path / f"{fmt}.onnx", fmt)
        for mode in SESSION_MODES:
            om = OnnxModel(tmp_path / f"{fmt}.onnx", mode=mode)
            out = np.concatenate([om.forward(data.x[i:i + 1000]) for i in range(0, len(data), 1000)])
            assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.999, (fmt, mode)
            assert np.abs(out - ref).max() < 1e-3, (fmt, mode)
