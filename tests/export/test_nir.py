"""The NIR backend: the graph it builds, its simulator against the NIR equations, calibration on a trained
model, the .nir file (nir.read, write -> read -> write), refusals and the CLI. Norse, the external check, is in
test_nir_norse.py."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import random_mlp
from op_examples import example_input, example_model

from ternkit.cli import main
from ternkit.core import InputSpec, TernaryModel, UnsupportedError, load_dataset, save_model
from ternkit.core.activity_schema import parse
from ternkit.export.nir.calibrate import calibrate
from ternkit.export.nir.graph import Neuron, NirNode, SpikingGraph, build_graph
from ternkit.export.nir.sim import run_graph


def _one_neuron(threshold: float, weight: float = 1.0, bias: float = 0.0) -> SpikingGraph:
    n = NirNode("IF", {"r": np.ones(1, np.float32), "v_threshold": np.full(1, threshold, np.float32),
                       "v_reset": np.zeros(1, np.float32)}, (1,))
    aff = NirNode("Affine", {"weight": np.full((1, 1), weight, np.float32), "bias": np.full(1, bias, np.float32)},
                  (1,))
    return SpikingGraph({"input": NirNode("Input", {}, (1,)), "a": aff, "n": n, "output": NirNode("Output", {}, (1,))},
                        [("input", "a"), ("a", "n"), ("n", "output")], {"n": "x"})


@pytest.mark.parametrize("z", [0.3, 0.25, 0.7, 1.0, 1.3])
def test_simulator_follows_the_if_equations(z):
    """Constant current z, threshold 1: v grows by z per step, spikes when v > 1 (strictly), resets to 0. So a
    spike every floor(1 / z) + 1 steps -- z = 0.25 needs 5 steps (v = 1.0 is not above the threshold)."""
    T = 40
    run = run_graph(_one_neuron(1.0), np.full((1, 1), z, np.float32), T)
    v, count = np.float32(0), 0
    for _ in range(T):  # the equations, step by step
        v = np.float32(v + np.float32(z))
        if v > np.float32(1.0):
            count, v = count + 1, np.float32(0)
    assert int(run.counts[0, 0]) == count
    if z == 0.25:
        assert count == T // 5


def test_graph_structure_and_integer_weights():
    model = example_model("avgpool2d")
    g = build_graph(model, integer_weights=True)
    kinds = [n.kind for n in g.nodes.values()]
    assert kinds[0] == "Input" and kinds[-1] == "Output" and "SumPool2d" in kinds and "AvgPool2d" not in kinds
    assert "Scale" not in kinds  # the 1 / window is in the next layer's threshold and bias
    for n in g.nodes.values():
        if n.kind in ("Conv2d", "Affine") and n.origin is not None and model.nodes[n.origin].op.has_weights:
            assert set(np.unique(n.params["weight"])) <= {-1.0, 0.0, 1.0}
        if n.kind == "IF":
            assert np.all(n.params["r"] == 1) and np.all(n.params["v_reset"] == 0)
    a_q = build_graph(model)
    conv = next(n for n in a_q.nodes.values() if n.kind == "Conv2d")
    op = model.nodes[0].op
    np.testing.assert_array_equal(conv.params["weight"],
                                  (op.weight * op.channel_scale().reshape(-1, 1, 1, 1)).astype(np.float32))


@pytest.mark.parametrize("name", ["dense", "avgpool2d", "add", "affine", "conv2d-grouped", "conv2d-rect"])
def test_integer_weights_and_scaled_weights_agree(name):
    """The two forms are the same network (scales moved into thresholds and biases): their spike counts may only
    differ where float32 rounding lands a membrane on a threshold."""
    model = example_model(name)
    x = example_input(model, 96)
    xn = model.input.normalise(x[48:])
    counts = []
    for integer in (False, True):
        p = calibrate(model, x[:48], 32, integer_weights=integer)
        counts.append(run_graph(build_graph(model, p, integer_weights=integer), xn, 32).counts)
    assert (counts[0] == counts[1]).mean() >= 0.97


@pytest.mark.parametrize("name, hint", [("maxpool2d", "avgpool2d"), ("concat", "add")])
def test_refusals_are_one_line_with_a_hint(name, hint):
    with pytest.raises(UnsupportedError) as e:
        build_graph(example_model(name))
    assert "\n" not in str(e.value) and hint in str(e.value) and repr(name) in str(e.value)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A digits MLP trained once for the tests of this module (model, its .tern path)."""
    from ternkit.trainer import TrainConfig, train

    model = train(TrainConfig(dataset="digits", model="mlp:64", method="conntra", epochs=5, seed=0),
                  progress=False).model
    path = tmp_path_factory.mktemp("digits") / "m.tern"
    save_model(model, path)
    return model, path


def test_calibrated_trained_model_agrees_and_t_helps(digits):
    """A trained digits MLP: the calibrated reset-to-zero network agrees with the reference on >= 95 % of the
    held-out digits at T = 32; the thresholds are calibrated for the T asked."""
    model, _ = digits
    data = load_dataset("digits")
    x_cal, x_test = data.x[:1000], data.x[1000:]
    ref = model.predict(x_test)
    agree = {}
    for T in (8, 32):
        p = calibrate(model, x_cal, T)
        run = run_graph(build_graph(model, p, timesteps=T), model.input.normalise(x_test), T)
        agree[T] = float((run.counts.argmax(1) == ref).mean())
    assert agree[32] >= 0.95, agree
    assert agree[32] >= agree[8] - 0.01, agree


needs_nir = pytest.mark.skipif(importlib.util.find_spec("nir") is None,
                               reason="the `nir` package is not installed (pip install 'ternkit[nir]')")


@needs_nir
def test_file_reads_back_and_round_trips(tmp_path):
    import nir

    from ternkit.export.nir.nirfile import from_nir, read_nir, to_nir, write_nir

    model = example_model("add")
    p = calibrate(model, example_input(model, 32), 16)
    g = build_graph(model, p, timesteps=16)
    g.metadata["model_fingerprint"] = model.fingerprint()
    write_nir(g, tmp_path / "a.nir")
    back = nir.read(tmp_path / "a.nir")  # the package's own reader, type checks on
    assert {type(n).__name__ for n in back.nodes.values()} >= {"Conv2d", "IF", "Flatten", "Affine", "Scale"}
    assert int(back.metadata["timesteps"]) == 16 and "constant input current" in str(back.metadata["encoding"])
    write_nir(from_nir(back), tmp_path / "b.nir")  # write -> read -> write
    assert (tmp_path / "a.nir").read_bytes() == (tmp_path / "b.nir").read_bytes()
    d1, d2 = to_nir(g).to_dict(), nir.read(tmp_path / "b.nir").to_dict()
    assert sorted(d1["nodes"]) == sorted(d2["nodes"])
    for k, node in d1["nodes"].items():
        for field, v in node.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, d2["nodes"][k][field])
    x = model.input.normalise(example_input(model, 20))
    np.testing.assert_array_equal(run_graph(g, x, 16).counts, run_graph(read_nir(tmp_path / "b.nir"), x, 16).counts)


@needs_nir
def test_cli_export_simulate_and_report(tmp_path, capsys, digits):
    import nir

    model, path = digits
    out = tmp_path / "m.nir"
    assert main(["export", "nir", str(path), "-o", str(out), "--timesteps", "24", "--integer-weights"]) == 0
    assert "wrote" in capsys.readouterr().out
    g = nir.read(out)
    assert int(g.metadata["timesteps"]) == 24 and int(g.metadata["integer_weights"]) == 1
    act = tmp_path / "act.json"
    assert main(["simulate", str(path), "--backend", "nir", "--dataset", "digits", "--limit", "200",
                 "--graph", str(out), "-o", str(act)]) == 0
    import json

    rec = parse(json.loads(act.read_text()), "act.json")
    assert rec["backend"] == "nir" and rec["timesteps"] == 24 and rec["agreement"] >= 0.9
    assert all(e["synaptic_ops_per_inference"] > 0 for e in rec["layers"])
    assert main(["report", str(path), "--activity", str(act), "--target", "loihi2", "-o", str(tmp_path / "rep")]) == 0


def _fails(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@needs_nir
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    model = example_model("maxpool2d")
    save_model(model, tmp_path / "mp.tern")
    assert "avgpool2d" in _fails(capsys, ["export", "nir", str(tmp_path / "mp.tern"), "-o", str(tmp_path / "a.nir"),
                                          "--calibrate", "digits"])
    other = random_mlp((4, 8, 3), seed=3)
    save_model(other, tmp_path / "o.tern")
    mlp = random_mlp((4, 8, 3), seed=4)
    save_model(mlp, tmp_path / "m.tern")
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    from ternkit.export.nir.backend import export_nir

    export_nir(mlp, tmp_path / "m.nir", calibrate=x)
    np.save(tmp_path / "x.npy", x)
    assert "fingerprints differ" in _fails(capsys, ["simulate", str(tmp_path / "o.tern"), "--backend", "nir",
                                                    "--dataset", "iris", "--graph", str(tmp_path / "m.nir")])
    assert ".nir" in _fails(capsys, ["export", "nir", str(tmp_path / "m.tern"), "-o", str(tmp_path / "m.json")])
    assert "--timesteps" in _fails(capsys, ["export", "nir", str(tmp_path / "m.tern"), "-o", str(tmp_path / "t.nir"),
                                            "--timesteps", "0"])
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    assert "bad.nir" in _fails(capsys, ["simulate", str(tmp_path / "m.tern"), "--backend", "nir", "--dataset", "iris",
                                        "--graph", str(tmp_path / "bad.nir")])
    monkeypatch.setitem(sys.modules, "nir", None)  # as if the extra were not installed
    assert "ternkit[nir]" in _fails(capsys, ["export", "nir", str(tmp_path / "m.tern"), "-o", str(tmp_path / "n.nir")])


def test_regression_model_refused():
    from ternkit.export.nir.export import nir_graph_for

    model = random_mlp((4, 8, 3))
    if not hasattr(model, "task"):
        pytest.skip("this ternkit has no regression models")
    model.task = "regress"
    with pytest.raises(Exception) as e:
        nir_graph_for(model, calibrate=np.zeros((4, 4), np.float32))
    assert "class scores" in str(e.value)


def test_neuron_params_scale_thresholds():
    model = TernaryModel(random_mlp((4, 6, 3)).layers, InputSpec((4,), np.zeros(4, np.float32),
                                                                  np.ones(4, np.float32)), ["a", "b", "c"])
    g1 = build_graph(model, {"layer1": Neuron(2.0, 1.0)})
    g2 = build_graph(model, {"layer1": Neuron(4.0, 1.0)})
    np.testing.assert_allclose(g2.nodes["layer1"].params["v_threshold"], 2 * g1.nodes["layer1"].params["v_threshold"])
