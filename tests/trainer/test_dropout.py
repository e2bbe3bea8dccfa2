import json

import pytest
import torch
import torch.nn.functional as F

from ternkit.cli import main
from ternkit.trainer import TrainConfig, build_network, train
from ternkit.trainer.dropout import Dropout, parse_dropout
from ternkit.trainer.loop import Hooks


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _attach(kind, rates, spec="mlp:40x20", inputs=30, parametrisation="float"):
    net = build_network(spec, (inputs,), 5, parametrisation, seed=0)
    shapes: dict[int, list] = {}
    for i, layer in enumerate(net.weight_layers()):  # record what the layer really multiplies
        def record(x, w, b, s=None, i=i, layer=layer):
            shapes.setdefault(i, []).append((tuple(x.shape), tuple(w.shape)))
            return layer.base_op(x, w, b, s)
        layer.op = record
    hooks = Hooks()
    tech = Dropout(kind, rates, seed=0)
    tech.attach(net, hooks, TrainConfig())
    return net, hooks, tech, shapes


def test_batchwise_computes_on_the_submatrix():
    net, hooks, _, shapes = _attach("batchwise", [0.2, 0.5])
    hooks.before_step[0](net, 0)
    out = net(torch.randn(8, 30))
    assert out.shape == (8, 5)
    # input: 24 of 30 kept; hidden: 20 of 40 and 10 of 20 -- the products are the smaller ones
    assert shapes[0][-1] == ((8, 24), (20, 24))
    assert shapes[1][-1] == ((8, 20), (10, 20))
    assert shapes[2][-1] == ((8, 10), (5, 10))


def test_only_the_submatrix_gets_a_gradient_and_kept_inputs_are_scaled():
    net, hooks, tech, _ = _attach("batchwise", [0.5])
    hooks.before_step[0](net, 0)
    x = torch.randn(8, 30)
    net(x).sum().backward()
    first, second = net.weight_layers()[0], net.weight_layers()[1]
    kept_h1 = tech.ops[1].in_idx  # hidden units of layer 0 that layer 1 sees
    assert kept_h1.numel() == 20 and tech.ops[0].in_idx is None  # one rate: inputs all kept
    rows = torch.zeros(40, dtype=torch.bool)
    rows[kept_h1] = True
    assert (first.weight.grad[~rows] == 0).all() and (first.weight.grad[rows] != 0).any()
    kept_h2 = tech.ops[2].in_idx
    nonzero = second.weight.grad != 0
    assert set(nonzero.any(1).nonzero().squeeze(1).tolist()) <= set(kept_h2.tolist())
    assert set(nonzero.any(0).nonzero().squeeze(1).tolist()) <= set(kept_h1.tolist())
    # the kept hidden units of layer 0, as layer 1 receives them: scaled by 40 / 20 (inverted dropout)
    with torch.no_grad():
        h = torch.relu(F.linear(x, first.weight[kept_h1], first.bias[kept_h1]))
        w = second.weight[kept_h2][:, kept_h1] * 2
        assert torch.allclose(tech.ops[1](h, second.weight, second.bias), F.linear(h, w, second.bias[kept_h2]),
                              atol=1e-5)


def test_patterns_change_per_batch_and_evaluation_uses_the_full_matrix():
    net, hooks, tech, shapes = _attach("batchwise", [0.5])
    draws = []
    for step in range(4):
        hooks.before_step[0](net, step)
        draws.append(tech.ops[1].in_idx.tolist())
    assert len({tuple(d) for d in draws}) > 1 and all(len(d) == 20 for d in draws)
    net.eval()
    x = torch.randn(8, 30)
    with torch.no_grad():
        ref = x
        for m in net.layers:
            ref = F.linear(ref, m.weight, m.bias) if hasattr(m, "weight") else m(ref)
        assert torch.allclose(net(x), ref, atol=1e-6)
    assert shapes[0][-1] == ((8, 30), (40, 30))


def test_mask_dropout_uses_the_full_matrix_and_a_mask_per_sample():
    net, hooks, _, shapes = _attach("mask", [0.5])
    x = torch.ones(16, 30)
    net(x)
    assert shapes[1][-1] == ((16, 40), (20, 40))  # full shapes
    net.train()
    layer = net.weight_layers()[1]
    seen = []
    inner = layer.op.inner
    layer.op.inner = lambda h, w, b, s=None: seen.append(h) or inner(h, w, b, s)
    net(x)
    zero_patterns = {tuple((seen[-1][i] == 0).tolist()) for i in range(16)}
    assert len(zero_patterns) > 1  # different units dropped for different samples


def test_cnn_drops_dense_inputs_only():
    net = build_network("cnn:4c3s2-16", (1, 8, 8), 3, "discrete", seed=0)
    hooks = Hooks()
    tech = Dropout("batchwise", [0.5], seed=0)
    tech.attach(net, hooks, TrainConfig())
    hooks.before_step[0](net, 0)
    assert tech.ops[0].in_idx is None and tech.ops[1].in_idx.numel() == 32 and not tech.ops[1].x_reduced
    assert tech.ops[2].x_reduced and tech.ops[1].out_idx is tech.ops[2].in_idx
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 3)


@pytest.mark.parametrize("method", ["conntra", "ste", "float"])
@pytest.mark.parametrize("kind", ["batchwise", "mask"])
def test_training_with_dropout_learns(method, kind, one_thread):
    cfg = TrainConfig(dataset="iris", model="mlp:32", method=method, epochs=60, batch_size=16, lr=1e-2, seed=1,
                      extra={"dropout": {"kind": kind, "rates": [0.2]}})
    r = train(cfg, progress=False)
    assert r.metrics["val_error"] <= 0.15, r.metrics["val_error"]
    ratio = r.metrics["dropout"]["mac_ratio"]
    assert (ratio < 0.9) if kind == "batchwise" else ratio == 1.0
    assert all(layer.op is None for layer in r.net.weight_layers())


def test_parse_dropout():
    assert parse_dropout("batchwise:0.2,0.5") == {"kind": "batchwise", "rates": [0.2, 0.5]}
    assert parse_dropout("mask:0.5") == {"kind": "mask", "rates": [0.5]}


@pytest.mark.parametrize("value,needle", [("batchwise:1", "[0, 1)"), ("drop:0.5", "--dropout must look like"),
                                          ("mask:", "--dropout must look like"), ("mask:a", "look like")])
def test_cli_bad_dropout_is_one_line(value, needle, tmp_path, capsys):
    out = tmp_path / "m.tern"
    assert main(["train", "--dataset", "iris", "--model", "mlp:8", "--epochs", "1", "--quiet", "--dropout", value,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not out.exists()


def test_cli_dropout_writes_metrics(tmp_path):
    out = tmp_path / "m.tern"
    assert main(["train", "--dataset", "digits", "--model", "mlp:32", "--epochs", "2", "--quiet", "--dropout",
                 "batchwise:0.2,0.5", "--out", str(out)]) == 0
    d = json.loads((tmp_path / "m.metrics.json").read_text())["dropout"]
    assert d["kind"] == "batchwise" and d["rates"] == [0.2, 0.5] and d["mac_ratio"] < 0.7


def test_conntra_updates_only_the_submatrix():
    """With batchwise dropout CoNNTrA's averages and moves stay inside the kept submatrix; the rest is untouched."""
    from ternkit.trainer import ConntraRule

    net, hooks, tech, _ = _attach("batchwise", [0.5], parametrisation="discrete")
    rule = ConntraRule(net, total_steps=10, frac_start=0.2, frac_end=0.2)
    rule.context = hooks.context  # as the loop hands it over: the submatrix travels there, not on the layer
    x, y = torch.randn(16, 30), torch.randint(0, 5, (16,))
    layer = net.weight_layers()[1]
    for step in range(3):
        hooks.before_step[0](net, step)
        before_q, before_m = layer.weight.detach().clone(), rule.m[1].clone()
        rule.step(lambda backward=True: F.cross_entropy(net(x), y).backward() or torch.tensor(0.0))
        rows, cols = hooks.context.active[layer.weight]
        assert not hasattr(layer, "active")
        inside = torch.zeros_like(layer.weight, dtype=torch.bool)
        inside[rows[:, None], cols[None, :]] = True
        assert torch.equal(layer.weight[~inside], before_q[~inside]) and torch.equal(rule.m[1][~inside],
                                                                                     before_m[~inside])
        assert not torch.equal(rule.m[1][inside], before_m[inside])  # the averages inside saw this batch
        assert rule.moves_last_step > 0
