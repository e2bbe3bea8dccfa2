"""Every operation through the Lava mapping (`op_examples.MODELS`): the float graph reproduces the reference
logits (every layout transform), the fixed-point sigma-delta emulation agrees with `TernaryModel.forward`, the
real Lava simulator equals the emulation bit for bit, and max pooling is refused with one line."""

from __future__ import annotations

import numpy as np
import pytest
from op_examples import MODELS, example_input, example_model

from ternkit.core import Affine, UnsupportedError
from ternkit.export.lava.graph import build_graph, emulate, load_graph, save_graph
from ternkit.export.lava.plan import HINTS

# the example models without an operation the planner declares it refuses (`plan.HINTS`, each with its hint)
MAPPED = [name for name in MODELS if not {n.op.kind for n in example_model(name).nodes} & set(HINTS)]


def _data(model, n=400):
    return example_input(model, n, seed=1), example_input(model, 500, seed=2)  # test inputs, calibration


@pytest.mark.parametrize("name", MAPPED)
def test_float_graph_is_the_reference(name):
    model = example_model(name)
    x, cal = _data(model, 64)
    out, _ = emulate(build_graph(model, cal, fixed=False), x)
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MAPPED)
def test_sigma_delta_agreement(name):
    """>= 99.5 % argmax agreement on 400 inputs. The example inputs are continuous, so they are sent with
    16-bit graded spikes: the 8-bit default quantises the input itself, which no operation's mapping can undo."""
    model = example_model(name)
    x, cal = _data(model)
    g = build_graph(model, cal, in_bits=16)
    out, _ = emulate(g, x)
    assert (out.argmax(1) == model.forward(x).argmax(1)).mean() >= 0.995
    assert np.all(out == np.round(out))
    for pop in g["populations"]:
        for syn in pop["synapses"]:
            assert np.abs(syn["weights"]).max() <= 254  # 8-bit synapses (Dense stores them x2)


@pytest.mark.lava
@pytest.mark.parametrize("name", MAPPED)
def test_real_lava_equals_emulation(name, tmp_path):
    """The default fixed-point graph, written and reloaded, in Lava's simulator: readout and every message
    counter equal the numpy emulation."""
    from ternkit.export.lava.sim import simulate_graph

    model = example_model(name)
    x, cal = _data(model, 5)
    save_graph(build_graph(model, cal), tmp_path / "g.lava.json")
    g = load_graph(tmp_path / "g.lava.json")
    run = simulate_graph(g, x)
    out, counts = emulate(g, x)
    np.testing.assert_array_equal(run.readout, out)
    for got, want in zip(run.messages, counts, strict=True):
        np.testing.assert_array_equal(got, want)


def _negative_affine():
    """An affine with a negative gain after ReLU: not foldable, so a diagonal synapse group and a linear
    (signed) sigma-delta population."""
    model = example_model("affine")
    node = next(n for n in model.nodes if n.op.kind == "affine")
    node.op = Affine(-node.op.scale, node.op.bias)
    return model


@pytest.mark.lava
def test_diagonal_affine_and_linear_population():
    from ternkit.export.lava.sim import simulate_graph

    model = _negative_affine()
    x, cal = _data(model)
    g = build_graph(model, cal, in_bits=16)
    roles = [s["role"] for p in g["populations"] for s in p["synapses"]]
    assert "affine" in roles and "linear" in [p["activation"] for p in g["populations"]]
    out, counts = emulate(g, x)
    assert (out.argmax(1) == model.forward(x).argmax(1)).mean() >= 0.995
    run = simulate_graph(g, x[:5])
    np.testing.assert_array_equal(run.readout, emulate(g, x[:5])[0])
    with pytest.raises(UnsupportedError, match="sigma-delta"):  # IF neurons cannot carry a signed value
        build_graph(model, cal, neuron="if")


def test_structure_of_the_mapping():
    """add: one population with two synapse groups (identity skip delayed by a relay); concat: one population;
    avgpool: constant-weight depthwise conv; affine after ReLU: folded (no synapses of its own)."""
    x_add = example_model("add")
    g = build_graph(x_add, _data(x_add)[1])
    pop = next(p for p in g["populations"] if p["node"] == "r2")
    assert sorted(s["role"] for s in pop["synapses"]) == ["identity", "weights"]
    assert "relay" in [s["role"] for p in g["populations"] for s in p["synapses"]]
    m = example_model("concat")
    g = build_graph(m, _data(m)[1])
    assert len(g["populations"][0]["synapses"]) == 2 and g["populations"][0]["shape"] == [5, 5, 5]
    m = example_model("avgpool2d")
    g = build_graph(m, _data(m)[1])
    pool = next(s for p in g["populations"] for s in p["synapses"] if s["role"] == "pool")
    assert pool["groups"] == 4 and set(np.unique(pool["weights"])) <= {0, 1, 128}
    m = example_model("affine")
    g = build_graph(m, _data(m)[1])
    assert {s["role"] for p in g["populations"] for s in p["synapses"]} == {"weights"}
    assert [e["kind"] for e in g["entries"]] == [n.op.kind for n in m.nodes if n.op.kind in ("conv2d", "dense")]


def test_maxpool_is_refused_with_what_to_use():
    model = example_model("maxpool2d")
    with pytest.raises(UnsupportedError) as e:
        build_graph(model, _data(model)[1])
    msg = str(e.value)
    assert "\n" not in msg and "maxpool2d" in msg and "strided conv2d or avgpool2d" in msg

