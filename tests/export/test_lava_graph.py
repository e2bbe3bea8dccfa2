"""Model -> Lava graph JSON: mapping, integer parameters, emulation against the reference, validation on load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import ArtifactError, Dense, Flatten, InputSpec, OptionError, ReLU, UnsupportedError, load_dataset
from ternkit.export.lava.graph import build_graph, emulate, load_graph, save_graph


def digits_mlp(data, seed=4):
    """A hand-built 64-32-10 ternary MLP on digits images (1, 8, 8): Flatten first, per-channel stats."""
    model = random_mlp((64, 32, 10), seed=seed)
    model.layers = [Flatten(), *model.layers]
    model.input = InputSpec((1, 8, 8), np.full((1, 1, 1), data.x.mean(), np.float32),
                            np.full((1, 1, 1), data.x.std(), np.float32))
    return model


def _x(model, n=64, seed=1):
    return np.random.default_rng(seed).normal(8, 4, size=(n, *model.input.shape)).astype(np.float32)


@pytest.mark.parametrize("make", [random_mlp, random_cnn])
def test_float_graph_reproduces_reference_logits(make):
    """Float graphs use Lava layouts (flipped XYC kernels, permuted flatten): emulating them must give the
    reference logits, which checks every layout transform."""
    model = make()
    x = _x(model)
    g = build_graph(model, x, fixed=False)
    out, _ = emulate(g, x)
    np.testing.assert_allclose(out, model.forward(x), atol=1e-4)


@pytest.mark.parametrize("make", [random_mlp, random_cnn])
def test_fixed_graph_is_integer_and_close(make):
    model = make()
    x = _x(model, 200)
    g = build_graph(model, x)
    for pop in g["populations"]:
        w = np.asarray(pop["synapses"][0]["weights"])
        assert np.all(w == np.round(w))
        assert np.abs(pop["bias_mantissa"]).max() < 2 ** 13 or pop["kind"] == "readout"
    out, _ = emulate(g, x)
    ref = model.forward(x)
    assert np.all(out == np.round(out))
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.95
    err = np.abs(out * g["readout"]["unit"] - ref).max()
    assert err < 0.05 * np.abs(ref).max()


def test_per_layer_scale_keeps_two_bit_weights():
    model = random_mlp((6, 12, 3), seed=2)
    for layer in model.weight_layers:
        layer.scale = np.full(1, 0.125, np.float32)
    g = build_graph(model, _x(model))
    syn = g["populations"][0]["synapses"][0]
    assert syn["num_weight_bits"] == 2
    assert set(np.unique(syn["weights"])) <= {-128, 0, 128}
    assert syn["weight_exp"] <= -7  # undoes the 2^7 (plus any range shift)


def test_per_channel_scale_uses_mantissa_rows():
    model = random_mlp((6, 12, 3), seed=3)
    g = build_graph(model, _x(model))
    syn = g["populations"][0]["synapses"][0]
    assert syn["num_weight_bits"] == 8
    m = np.asarray(syn["weight_mantissa"])
    assert m.max() == 127 and m.min() >= 64  # per-row mantissas: 7 bits for every row, the neuron's shift undoes
    q = model.weight_layers[0].weight
    np.testing.assert_array_equal(np.asarray(syn["weights"]), 2 * q * m[:, None])
    s = model.weight_layers[0].scale
    np.testing.assert_allclose(m * 2.0 ** -np.asarray(g["populations"][0]["in_shift"]) / 127, s / s.max(), rtol=0.01)


def test_if_graph_rate_coding_agrees_at_large_T():
    data = load_dataset("digits")
    model = digits_mlp(data)
    x = data.x[:300]
    ref = model.predict(x)
    g = build_graph(model, x, neuron="if", timesteps=256)
    out, counts = emulate(g, x)
    assert g["input"]["mean_in_bias"] and not g["input"]["split_sign"]  # digits pixels are >= 0
    assert (out.argmax(1) == ref).mean() >= 0.95
    assert counts[0].sum() > 0


def test_round_trip_and_validation(tmp_path):
    model = random_cnn()
    g = build_graph(model, _x(model), neuron="if", timesteps=8)
    path = tmp_path / "m.lava.json"
    save_graph(g, path)
    assert load_graph(path) == json.loads(json.dumps(g))

    def broken(mutate, match):
        bad = json.loads(path.read_text())
        mutate(bad)
        p = tmp_path / "bad.lava.json"
        p.write_text(json.dumps(bad))
        with pytest.raises(ArtifactError, match=match):
            load_graph(p)

    broken(lambda d: d.update(version=99), "version 99")
    broken(lambda d: d.update(format="x"), "not a ternkit-lava-graph")
    broken(lambda d: d["populations"][1]["synapses"][0].update(weights=[[1.5]]), "integers|shape")
    broken(lambda d: d["populations"][1]["synapses"][0].update(shape=[3, 3]), "declared shape")
    broken(lambda d: d["populations"][0].update(phase=5), "phase")
    broken(lambda d: d["populations"].pop(), "position")  # the last population must be the readout
    broken(lambda d: d["populations"][1]["synapses"][0].update(source=2), "earlier population")
    broken(lambda d: d["input"].update(std=[0.0]), "std")
    (tmp_path / "junk.lava.json").write_bytes(b"\x00{not json")
    with pytest.raises(ArtifactError, match="not (a readable|valid) JSON"):
        load_graph(tmp_path / "junk.lava.json")
    with pytest.raises(ArtifactError, match="no such file"):
        load_graph(tmp_path / "missing.lava.json")


def test_signed_hidden_values_map_to_linear_sigma_delta_and_are_refused_for_if():
    """A hidden weight layer without ReLU, a final ReLU and a ReLU on the input are all mappable with
    sigma-delta neurons (a linear population, an identity synapse into the readout, a ReLU population of the
    input); integrate-and-fire neurons send unit spikes, so a signed hidden value is refused in one line."""
    linear = random_mlp((4, 8, 3))
    linear.layers = [layer for layer in linear.layers if not isinstance(layer, ReLU)]  # hidden layer now linear
    final = random_mlp((4, 8, 3))
    final.layers = [*final.layers, ReLU()]
    first = random_mlp((4, 8, 3))
    first.layers = [ReLU(), *first.layers]
    for model in (linear, final, first):
        x = _x(model, 300)
        out, _ = emulate(build_graph(model, x), x)
        assert (out.argmax(1) == model.predict(x)).mean() >= 0.99
    assert [p["activation"] for p in build_graph(linear, _x(linear))["populations"]] == ["linear", None]
    with pytest.raises(UnsupportedError, match="without ReLU.*sigma-delta"):
        build_graph(linear, _x(linear), neuron="if")
    fm = random_mlp((4, 8, 3), kind="float")
    with pytest.raises(ArtifactError, match="float model"):
        build_graph(fm, _x(fm))
    with pytest.raises(OptionError, match="neuron"):
        build_graph(random_mlp(), _x(random_mlp()), neuron="lif")
    with pytest.raises(OptionError, match="calibration"):
        build_graph(random_mlp(), np.zeros((3, 5), np.float32))
    assert isinstance(random_mlp().layers[0], Dense)


def test_version_1_graph_still_loads(tmp_path):
    """A graph written by the chain-only exporter (version 1) loads as the equal version-2 graph."""
    model = random_cnn()
    x = _x(model, 50)
    g = build_graph(model, x)
    v1 = {k: v for k, v in g.items() if k not in ("populations", "entries", "model_fingerprint")}
    v1["version"] = 1
    v1["layers"] = [{"index": e["index"], "op": p["synapses"][0]["op"], "fan_out": p["synapses"][0]["fan_out"],
                     "dense_macs": e["connections"], "weight_mantissa": p["synapses"][0]["weight_mantissa"],
                     "synapse": {k: v for k, v in p["synapses"][0].items()
                                 if k not in ("op", "source", "fan_out", "role", "index", "node", "groups",
                                              "weight_mantissa")},
                     "neuron": {k: v for k, v in p.items() if k not in ("synapses", "node", "index", "activation")}}
                    for p, e in zip(g["populations"], g["entries"], strict=True)]
    (tmp_path / "v1.lava.json").write_text(json.dumps(v1))
    loaded = load_graph(tmp_path / "v1.lava.json")
    assert loaded["version"] == 2
    np.testing.assert_array_equal(emulate(loaded, x)[0], emulate(g, x)[0])


def test_choose_percentile_scores_on_held_out_data():
    from ternkit.export.lava.graph import PERCENTILES, choose_percentile

    data = load_dataset("digits")
    model = digits_mlp(data)
    calib, held = data.x[:800], data.x[800:1200]
    p = choose_percentile(model, calib, held, 4)
    assert p in PERCENTILES
    ref = model.predict(held)

    def agree(q):
        return (emulate(build_graph(model, calib, neuron="if", timesteps=4, percentile=q), held)[0].argmax(1)
                == ref).mean()

    assert agree(p) >= max(agree(q) for q in PERCENTILES)
    assert build_graph(model, calib, neuron="if", timesteps=4, percentile=p)["percentile"] == p
    with pytest.raises(OptionError, match="percentile"):
        build_graph(model, calib, neuron="if", percentile=0)
