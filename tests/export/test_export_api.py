"""The export API does what `ternkit export` does: `ternkit.export_c` / `export_lava` / `export_model` take the
calibration data as a dataset spec, an array of raw samples or a Dataset, and the CLI's files are the API's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import random_mlp

import ternkit
from ternkit.cli import main
from ternkit.core import InputSpec, OptionError, load_dataset, save_model
from ternkit.core.activity_schema import parse


@pytest.fixture(scope="module")
def iris_model():
    model = random_mlp((4, 12, 3), seed=4)
    x = load_dataset("iris").x
    model.input = InputSpec((4,), x.mean(0).astype(np.float32), x.std(0).astype(np.float32))
    model.provenance = {"dataset": "iris", "seed": 0, "config": {"seed": 0, "val_fraction": 0.2}}
    return model


def test_export_c_calibration_as_spec_array_or_dataset(iris_model, tmp_path, capsys):
    tern = tmp_path / "m.tern"
    save_model(iris_model, tern)
    assert main(["export", "c", str(tern), "-o", str(tmp_path / "cli"), "--calibrate", "iris"]) == 0
    prog = ternkit.export_c(iris_model, tmp_path / "spec", calibrate="iris")
    assert (tmp_path / "cli" / "model.c").read_text() == (tmp_path / "spec" / "model.c").read_text()
    iris = load_dataset("iris")
    ternkit.export_c(iris_model, tmp_path / "array", calibrate=iris.x)
    ternkit.export_c(iris_model, tmp_path / "dataset", calibrate=iris)
    # the same samples give the same integer program, whatever form they came in
    strip = [line for line in (tmp_path / "spec" / "model.c").read_text().splitlines() if "iris" not in line]
    for form in ("array", "dataset"):
        other = [line for line in (tmp_path / form / "model.c").read_text().splitlines() if "given data" not in line]
        assert other == strip, form
    assert prog.calibration_samples == len(iris)
    with pytest.raises(OptionError, match="shape"):
        ternkit.export_c(iris_model, tmp_path / "bad", calibrate=np.zeros((10, 5), np.float32))
    assert not (tmp_path / "bad").exists()


def test_export_lava_and_export_model(iris_model, tmp_path):
    x = load_dataset("iris").x
    graph = ternkit.export_lava(iris_model, tmp_path / "a.lava.json", calibrate=x, neuron="if", timesteps=8)
    assert graph["neuron"] == "if" and json.loads((tmp_path / "a.lava.json").read_text())["timesteps"] == 8
    w = ternkit.export_model("lava", iris_model, tmp_path / "b.lava.json", calibrate=x, fixed=False)
    assert w.result["numerics"] == "floating_pt" and "wrote" in w.summary
    w = ternkit.export_model("onnx", iris_model, tmp_path / "m.onnx", fmt="int8")
    assert w.result.format == "int8" and w.paths == (tmp_path / "m.onnx",)
    with pytest.raises(OptionError, match="nbits do not apply to backend lava export"):
        ternkit.export_model("lava", iris_model, tmp_path / "c.lava.json", nbits=True)
    with pytest.raises(OptionError, match="cortex-m4 has no export"):
        ternkit.export_model("cortex-m4", iris_model, tmp_path / "x")
    with pytest.raises(OptionError, match="unknown backend 'fpga'"):
        ternkit.export_model("fpga", iris_model, tmp_path / "x")


def test_simulate_takes_paths_specs_and_writes_the_record(iris_model, tmp_path):
    tern = tmp_path / "m.tern"
    save_model(iris_model, tern)
    r = ternkit.simulate(tern, "iris", "onnx", limit=30, out=tmp_path / "a.json")
    assert (r["model"], r["dataset"], r["samples"]) == (str(tern), "iris", 30)
    assert json.loads((tmp_path / "a.json").read_text()) == r
    with pytest.raises(OptionError, match="must end in .json"):
        ternkit.simulate(tern, "iris", "onnx", out=tmp_path / "a.txt")


@pytest.mark.parametrize("name", ["nir", "cortex-m4", "hls4ml", "my-chip2"])
def test_activity_schema_takes_any_backend_name(name):
    rec = {"format": "ternkit-activity", "version": 1, "backend": name, "samples": 1, "layers": [
        {"neurons": 1, "fan_out": 1, "messages_per_inference": 1, "synaptic_ops_per_inference": 1,
         "neuron_updates_per_inference": 1, "input_activation_sparsity": 0}],
        "synaptic_ops_per_inference": 1, "neuron_updates_per_inference": 1, "dense_macs_per_inference": 1}
    assert parse(rec, "t")["backend"] == name
    for bad in ("", "Lava", "../x", "a b", "-x", "x" * 41, 3, None):
        with pytest.raises(ternkit.TernkitError, match="backend must be a backend name"):
            parse({**rec, "backend": bad}, "t")
