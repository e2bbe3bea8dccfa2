"""Real Lava simulations (Loihi2SimCfg, CPU) of exported graphs: bit-exact against the numpy emulation of the
same fixed-point arithmetic, agreement with the reference, activity counters."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_cnn, random_mlp
from test_lava_graph import digits_mlp

from ternkit.core import OptionError, load_dataset
from ternkit.export.lava.graph import build_graph, emulate
from ternkit.export.lava.sim import lava_activity, simulate_graph

pytestmark = pytest.mark.lava  # every test here runs Lava


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("neuron", ["sigma-delta", "if"])
def test_fixed_point_lava_equals_emulation_mlp(digits, neuron):
    model = digits_mlp(digits)
    g = build_graph(model, digits.x[:500], neuron=neuron, timesteps=8)
    x = digits.x[-23:]
    run = simulate_graph(g, x, chunk=10)  # three chunks: three compiled networks, results concatenated
    out, counts = emulate(g, x)
    np.testing.assert_array_equal(run.readout, out)
    for got, want in zip(run.messages, counts, strict=True):
        np.testing.assert_array_equal(got, want)
    assert run.chunks == 3 and run.samples == 23
    if neuron == "sigma-delta":
        assert (run.readout.argmax(1) == model.predict(x)).mean() >= 0.95


@pytest.mark.parametrize("neuron", ["sigma-delta", "if"])
def test_fixed_point_lava_equals_emulation_cnn(neuron):
    model = random_cnn()
    x = np.random.default_rng(0).normal(8, 4, size=(12, 1, 8, 8)).astype(np.float32)
    g = build_graph(model, x, neuron=neuron, timesteps=4)
    run = simulate_graph(g, x)
    out, counts = emulate(g, x)
    np.testing.assert_array_equal(run.readout, out)
    for got, want in zip(run.messages, counts, strict=True):
        np.testing.assert_array_equal(got, want)


def test_float_sigma_delta_reproduces_reference_logits():
    model = random_mlp((5, 16, 4), seed=7)
    x = np.random.default_rng(1).normal(0, 2, size=(15, 5)).astype(np.float32)
    g = build_graph(model, x, fixed=False)
    run = simulate_graph(g, x)
    np.testing.assert_allclose(run.readout, model.forward(x), atol=1e-4)
    with pytest.raises(OptionError, match="floating_pt"):
        simulate_graph(g, x, fixed=True)


def test_activity_entries(digits):
    model = digits_mlp(digits)
    g = build_graph(model, digits.x[:300])
    x = digits.x[:10]
    run = simulate_graph(g, x)
    entries = lava_activity(g, run)
    assert [e["index"] for e in entries] == [1, 3]
    first = entries[0]
    nz = (digits.x[:10].reshape(10, -1) != 0).sum()
    assert first["messages_per_inference"] == pytest.approx(nz / 10)  # graded input: one event per non-zero pixel
    assert 0 < first["synaptic_ops_per_inference"] <= first["messages_per_inference"] * 32
    assert first["neuron_updates_per_inference"] == 32  # 32 neurons, one step per sample
    assert 0 < first["input_activation_sparsity"] < 1
    assert run.samples_per_second > 0 and run.startup_seconds > 0


@pytest.mark.slow
def test_trained_digits_model_agreement(tmp_path):
    """A CoNNTrA-trained digits MLP: sigma-delta agrees (almost) exactly, rate-coded IF closely."""
    from ternkit.trainer import TrainConfig, train

    model = train(TrainConfig(dataset="digits", model="mlp:64", method="conntra", epochs=15, seed=0),
                  progress=False).model
    data = load_dataset("digits@val:0:0.2")
    calib = load_dataset("digits@train:0:0.2").x
    ref = model.predict(data.x)
    sd = simulate_graph(build_graph(model, calib), data.x)
    assert (sd.readout.argmax(1) == ref).mean() >= 0.99
    rate = simulate_graph(build_graph(model, calib, neuron="if", timesteps=32), data.x)
    assert (rate.readout.argmax(1) == ref).mean() >= 0.95


@pytest.mark.mnist
def test_two_conv_layers_stay_within_lava_accumulators():
    """conv 8c5s2 -> conv 16c5s2 -> dense on 28x28 images: without bounding the second conv's sums, Lava's
    24-bit Conv clamp would saturate; the graph's range shifts keep Lava bit-exact with the emulation."""
    from ternkit.core import Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel

    rng = np.random.default_rng(3)

    def conv(o, c):
        return Conv2d(rng.integers(-1, 2, size=(o, c, 5, 5)).astype(np.int8), rng.uniform(0.05, 0.2, o).astype(
            np.float32), rng.normal(0, 0.05, o).astype(np.float32), stride=(2, 2), padding=(2, 2))

    model = TernaryModel([conv(8, 1), ReLU(), conv(16, 8), ReLU(), Flatten(),
                          Dense(rng.integers(-1, 2, size=(10, 784)).astype(np.int8),
                                rng.uniform(0.01, 0.05, 10).astype(np.float32), np.zeros(10, np.float32))],
                         InputSpec((1, 28, 28), np.zeros((1, 1, 1), np.float32), np.full((1, 1, 1), 255, np.float32)),
                         [str(i) for i in range(10)])
    data = load_dataset("mnist-sample")
    g = build_graph(model, data.x[:200])
    x = data.x[-8:]
    run = simulate_graph(g, x)
    out, _ = emulate(g, x)
    np.testing.assert_array_equal(run.readout, out)
    assert (run.readout.argmax(1) == model.predict(x)).mean() >= 7 / 8
