"""`ternkit export lava` and `ternkit simulate` from the command line: outputs, the activity record, and bad
input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import Flatten, InputSpec, ReLU, load_dataset, save_model


@pytest.fixture(scope="module")
def tern(tmp_path_factory):
    """A hand-built ternary 64-24-10 MLP for digits (1, 8, 8) that names its dataset, as trained models do."""
    data = load_dataset("digits")
    model = random_mlp((64, 24, 10), seed=5)
    model.layers = [Flatten(), *model.layers]
    model.input = InputSpec((1, 8, 8), np.full((1, 1, 1), data.x.mean(), np.float32),
                            np.full((1, 1, 1), data.x.std(), np.float32))
    model.provenance = {"dataset": "digits", "seed": 0, "config": {"seed": 0, "val_fraction": 0.2}}
    path = tmp_path_factory.mktemp("m") / "digits.tern"
    save_model(model, path)
    return path


def _fail(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert match in err, err
    return err


def test_export_lava_writes_a_reloadable_graph(tern, tmp_path, capsys):
    out = tmp_path / "m.lava.json"
    assert main(["export", "lava", str(tern), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    g = json.loads(out.read_text())
    assert g["format"] == "ternkit-lava-graph" and g["version"] == 2 and g["numerics"] == "fixed_pt"
    assert g["source"] == "digits@train:0:0.2"
    assert [p["synapses"][0]["process"].rsplit(".", 1)[1] for p in g["populations"]] == ["Dense", "Dense"]
    assert main(["export", "lava", str(tern), "-o", str(tmp_path / "if.lava.json"), "--neuron", "if",
                 "--timesteps", "16", "--float"]) == 0
    g = json.loads((tmp_path / "if.lava.json").read_text())
    assert g["neuron"] == "if" and g["timesteps"] == 16 and g["numerics"] == "floating_pt"
    assert main(["export", "lava", str(tern), "-o", str(tmp_path / "auto.lava.json"), "--neuron", "if",
                 "--timesteps", "4", "--percentile", "auto"]) == 0
    assert json.loads((tmp_path / "auto.lava.json").read_text())["percentile"] in (100, 99.9, 99.5, 99, 98, 95)


@pytest.mark.lava
def test_simulate_lava_activity_record(tern, tmp_path, capsys):
    act = tmp_path / "run.json"
    assert main(["simulate", str(tern), "--dataset", "digits", "--limit", "12", "--json", "-o", str(act)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r == json.loads(act.read_text())
    assert (r["format"], r["version"], r["backend"], r["neuron"], r["samples"]) == \
        ("ternkit-activity", 1, "lava", "sigma-delta", 12)
    assert r["agreement"] >= 11 / 12 and 0 <= r["accuracy"] <= 1 and r["samples_per_second"] > 0
    assert [e["index"] for e in r["layers"]] == [1, 3]
    for e in r["layers"]:
        assert set(e) >= {"index", "kind", "neurons", "fan_out", "messages_per_inference",
                          "synaptic_ops_per_inference", "neuron_updates_per_inference", "input_activation_sparsity"}
    assert r["synaptic_ops_per_inference"] == pytest.approx(sum(e["synaptic_ops_per_inference"] for e in r["layers"]))
    assert r["dense_macs_per_inference"] == 64 * 24 + 24 * 10


@pytest.mark.lava
def test_simulate_text_table_and_exported_graph(tern, tmp_path, capsys):
    g = tmp_path / "g.lava.json"
    assert main(["export", "lava", str(tern), "-o", str(g), "--neuron", "if", "--timesteps", "8"]) == 0
    capsys.readouterr()
    assert main(["simulate", str(tern), "--dataset", "digits", "--limit", "5", "--graph", str(g)]) == 0
    out = capsys.readouterr().out
    assert "lava if (fixed_pt) on digits: 5 samples" in out and "synaptic ops/inference" in out
    _fail(capsys, ["simulate", str(tern), "--dataset", "digits", "--graph", str(g), "--float-sim"], "drop --float-sim")


def test_simulate_onnx_backend_same_fields(tern, capsys):
    assert main(["simulate", str(tern), "--backend", "onnx", "--dataset", "digits", "--limit", "20", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["backend"] == "onnx" and r["agreement"] == 1.0 and r["timesteps"] == 1
    assert [e["index"] for e in r["layers"]] == [1, 3]
    assert r["layers"][0]["neuron_updates_per_inference"] == 24


@pytest.mark.lava
def test_bad_input(tern, tmp_path, capsys):
    out = tmp_path / "x.lava.json"
    _fail(capsys, ["export", "lava", str(tmp_path / "none.tern"), "-o", str(out)], "no such file")
    _fail(capsys, ["export", "lava", str(tern), "-o", str(tmp_path / "x.txt")], "must end in .json")
    _fail(capsys, ["export", "lava", str(tern), "-o", str(out), "--calibrate", "iris"], "shape")
    _fail(capsys, ["export", "lava", str(tern), "-o", str(out), "--neuron", "if", "--timesteps", "0"], "timesteps")
    assert not out.exists()
    corrupt = tmp_path / "corrupt.lava.json"
    corrupt.write_text('{"format": "ternkit-lava-graph", "version": 1, "layers": "no"')
    _fail(capsys, ["simulate", str(tern), "--dataset", "digits", "--graph", str(corrupt)], "not valid JSON")
    corrupt.write_text(json.dumps({"format": "ternkit-lava-graph", "version": 1, "numerics": "fixed_pt"}))
    _fail(capsys, ["simulate", str(tern), "--dataset", "digits", "--graph", str(corrupt)], "corrupt.lava.json")
    _fail(capsys, ["simulate", str(tern), "--dataset", "iris"], "shape")
    _fail(capsys, ["simulate", str(tern), "--dataset", "digits", "--limit", "0"], "--limit")
    _fail(capsys, ["simulate", str(tern), "--dataset", "digits", "-o", str(tmp_path / "a.txt")], "must end in .json")
    _fail(capsys, ["simulate", str(tern), "--backend", "onnx", "--dataset", "digits", "--float-sim"], "lava only")
    _fail(capsys, ["export", "lava", str(tern), "-o", str(out), "--neuron", "if", "--percentile", "most"], "'auto'")


@pytest.mark.lava
def test_unmappable_and_float_models(tmp_path, capsys):
    linear = random_mlp((4, 6, 3))
    linear.layers = [layer for layer in linear.layers if not isinstance(layer, ReLU)]
    save_model(linear, tmp_path / "linear.tern")
    _fail(capsys, ["simulate", str(tmp_path / "linear.tern"), "--dataset", "iris", "--calibrate", "iris",
                   "--neuron", "if"], "without ReLU")
    save_model(random_mlp((4, 6, 3), kind="float"), tmp_path / "float.tern")
    _fail(capsys, ["export", "lava", str(tmp_path / "float.tern"), "-o", str(tmp_path / "f.lava.json"),
                   "--calibrate", "iris"], "float model")
    save_model(random_mlp((4, 6, 3)), tmp_path / "noprov.tern")
    _fail(capsys, ["export", "lava", str(tmp_path / "noprov.tern"), "-o", str(tmp_path / "n.lava.json")],
          "--calibrate")


@pytest.mark.lava
def test_incompatible_lava_setup_is_one_line(tern):
    """A process that chose the 'spawn' start method before lava could: exit 2, one line, no traceback."""
    code = ("import multiprocessing as mp, sys; mp.set_start_method('spawn')\n"
            "from ternkit.cli import main\n"
            f"sys.exit(main(['simulate', {str(tern)!r}, '--dataset', 'digits', '--limit', '2']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "lava needs the 'fork'" in out.stderr


def test_calibration_defaults_to_all_data_when_trained_without_validation(tern, tmp_path, capsys):
    from ternkit.core import load_model

    model = load_model(tern)
    model.provenance = {"dataset": "digits", "seed": 3, "config": {"seed": 3, "val_fraction": 0.0}}
    save_model(model, tmp_path / "all.tern")
    out = tmp_path / "all.lava.json"
    assert main(["export", "lava", str(tmp_path / "all.tern"), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["source"] == "digits"


def test_simulate_api_backend_table(tern):
    """`ternkit.simulate` is the function behind the command: a backend is a table entry, and an option a
    backend does not take is refused in one line."""
    import ternkit
    from ternkit.core import OptionError, load_model
    from ternkit.export.backend import REGISTRY

    model = load_model(tern)
    data = ternkit.simulation_data(model, "digits", 10)
    r = ternkit.simulate(model, data, "onnx", dataset="digits")
    assert r["backend"] == "onnx" and r["samples"] == 10 and r["agreement"] == 1.0
    assert r["model_fingerprint"] == model.fingerprint() and set(REGISTRY) >= {"onnx", "lava"}
    with pytest.raises(OptionError, match="neuron do not apply to backend onnx"):
        ternkit.simulate(model, data, "onnx", neuron="if")
    with pytest.raises(OptionError, match="unknown backend"):
        ternkit.simulate(model, data, "fpga")
