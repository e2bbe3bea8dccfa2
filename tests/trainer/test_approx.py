import json

import pytest
import torch

from ternkit.cli import main
from ternkit.trainer import TrainConfig, build_network, train
from ternkit.trainer.approx import ApproxOps, MacCounter, SampledOp, sample_pairs, sample_size, sampled_matmul
from ternkit.trainer.loop import Hooks


@pytest.fixture
def one_thread():
    """Thousands of tiny products: threads only add contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _operands(seed=0, rows=24, n=60, cols=16):
    g = torch.Generator().manual_seed(seed)
    # uneven column/row norms, as in real layers, so the norm-based choice matters
    a = torch.randn(rows, n, generator=g) * torch.rand(n, generator=g) * 3
    b = torch.randn(n, cols, generator=g) * torch.rand(n, 1, generator=g) * 3
    return a, b


@pytest.mark.parametrize("method", ["bernoulli", "crs"])
def test_unbiased_samplers_average_to_the_exact_product(method, one_thread):
    a, b = _operands()
    exact = a @ b
    g = torch.Generator().manual_seed(1)
    one = sampled_matmul(a, b, 20, method, g)
    mean = sum(sampled_matmul(a, b, 20, method, g) for _ in range(3000)) / 3000
    err_one = float((one - exact).norm() / exact.norm())
    err_mean = float((mean - exact).norm() / exact.norm())
    assert err_one > 0.1  # one sample really is an approximation ...
    assert err_mean < 0.05 and err_mean < err_one / 8  # ... and the average converges to the exact product


@pytest.mark.parametrize("method", ["bernoulli", "crs"])
def test_every_pair_has_expected_weight_one(method, one_thread):
    norms = torch.rand(50, generator=torch.Generator().manual_seed(3)) + 0.5  # p_i >= 0.1: std of a mean <= 0.05
    g = torch.Generator().manual_seed(0)
    total, count = torch.zeros(50), 0
    for _ in range(4000):
        idx, w = sample_pairs(norms, 10, method, g)
        total.index_add_(0, idx, w)
        count += idx.numel()
    assert torch.allclose(total / 4000, torch.ones(50), atol=0.25)  # 5 sigma
    assert count / 4000 <= 10.01  # at most k pairs on average (bernoulli) / exactly k draws (crs)


def test_topk_keeps_the_largest_norm_products_unscaled():
    norms = torch.tensor([5.0, 1.0, 9.0, 0.5, 7.0, 2.0])
    idx, w = sample_pairs(norms, 3, "topk")
    assert sorted(idx.tolist()) == [0, 2, 4] and w is None
    a, b = _operands()
    assert torch.allclose(sampled_matmul(a, b, 60, "topk"), a @ b, atol=1e-4)  # k = n: exact


def test_sample_size_has_a_floor_and_a_ceiling():
    assert sample_size(800, 0.5) == 400 and sample_size(800, 0.3) == 240
    assert sample_size(10, 0.1) == 4 and sample_size(2, 0.1) == 2 and sample_size(7, 1.0) == 7


def _recorder(shapes):
    def op(x, w, b, s=None):
        shapes.append((tuple(x.shape), tuple(w.shape)))
        y = torch.nn.functional.linear(x, w) if w.dim() == 2 else torch.nn.functional.conv2d(x, w, padding=1)
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return (y if s is None else y * s.reshape(shape)) + b.reshape(shape)
    return op


def test_sampled_dense_multiplies_smaller_matrices_and_evaluates_exactly():
    net = build_network("mlp:40", (30,), 5, "float", seed=0)
    layer = net.weight_layers()[0]
    shapes: list = []
    counter = MacCounter()
    layer.op = SampledOp(layer, 0, "topk", 0.5, counter, torch.Generator(), inner=_recorder(shapes))
    x = torch.randn(8, 30)
    net.eval()
    with torch.no_grad():
        exact = torch.nn.functional.linear(x, layer.effective_weight(), layer.bias)
        assert torch.allclose(layer(x), exact)  # evaluation: the full product
    net.train()
    layer(x).sum().backward()
    assert shapes[-1] == ((8, 15), (40, 15))  # k = 15 of 30 columns, gathered
    assert counter.executed * 2 == counter.exact  # MACs halved
    zero_cols = (layer.weight.grad == 0).all(0)
    assert int(zero_cols.sum()) == 15  # unsampled columns get no gradient this step


def test_sampled_conv_samples_input_channels():
    net = build_network("cnn:6c3s1", (8, 6, 6), 3, "discrete", seed=0)
    conv = net.weight_layers()[0]
    shapes: list = []
    conv.op = SampledOp(conv, 0, "bernoulli", 0.5, MacCounter(), torch.Generator().manual_seed(0),
                        inner=_recorder(shapes))
    out = conv(torch.randn(4, 8, 6, 6))
    (x_shape, w_shape) = shapes[-1]
    assert x_shape[1] == w_shape[1] < 8 and w_shape[0] == 6 and out.shape == (4, 6, 6, 6)


@pytest.mark.parametrize("method", ["conntra", "ste", "float"])
def test_training_with_sampled_products_still_learns(method, one_thread):
    extra = {"approx": {"method": "topk", "ratio": 0.5}}
    cfg = TrainConfig(dataset="iris", model="mlp:32x16", method=method, epochs=60, batch_size=16, lr=1e-2, seed=1,
                      extra=extra)
    r = train(cfg, progress=False)
    assert r.metrics["val_error"] <= 0.15, r.metrics["val_error"]
    a = r.metrics["approx"]
    assert set(a["per_layer"]) == {"0", "1"}  # by default every layer but the output layer
    first, second = a["per_layer"]["0"], a["per_layer"]["1"]
    assert first["executed"] == first["exact"] > 0  # 4 inputs: below the floor of MIN_K pairs, exact
    assert second["executed"] * 2 == second["exact"] > 0  # 16 of the 32 hidden units
    assert all(layer.op is None for layer in r.net.weight_layers())  # the returned network is exact


def test_only_chosen_layers_are_sampled():
    net = build_network("mlp:16x16", (8,), 3, "float")
    ApproxOps("crs", 0.5, layers=[1]).attach(net, Hooks(), TrainConfig())
    assert [layer.op is not None for layer in net.weight_layers()] == [False, True, False]
    net = build_network("mlp:16x16", (8,), 3, "float")
    ApproxOps("crs", 0.5).attach(net, Hooks(), TrainConfig())
    assert [layer.op is not None for layer in net.weight_layers()] == [True, True, False]


def test_cli_approx_writes_metrics(tmp_path, capsys):
    out = tmp_path / "m.tern"
    assert main(["train", "--dataset", "iris", "--model", "mlp:16", "--epochs", "3", "--quiet", "--approx",
                 "bernoulli", "--approx-ratio", "0.7", "--approx-layers", "0", "--out", str(out)]) == 0
    metrics = json.loads((tmp_path / "m.metrics.json").read_text())
    assert metrics["approx"]["method"] == "bernoulli" and set(metrics["approx"]["per_layer"]) == {"0"}


@pytest.mark.parametrize("argv,needle", [
    (["--approx", "magic"], "invalid choice"),
    (["--approx", "topk", "--approx-ratio", "1.5"], "--approx-ratio"),
    (["--approx-ratio", "0.5"], "need --approx"),
    (["--approx", "topk", "--approx-layers", "x"], "--approx-layers"),
    (["--approx", "topk", "--approx-layers", "9"], "weight layers 0..1"),
])
def test_cli_bad_approx_options_are_one_line(argv, needle, tmp_path, capsys):
    out = tmp_path / "m.tern"
    assert main(["train", "--dataset", "iris", "--model", "mlp:8", "--epochs", "1", "--quiet", *argv,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()

