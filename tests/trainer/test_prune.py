import numpy as np
import pytest
import torch

from ternkit.core import load_model
from ternkit.core.errors import OptionError
from ternkit.trainer import TrainConfig, build_network, train
from ternkit.trainer.prune import freeze_ternary, prune_global, prune_settings, sparsity


def _zeros(net) -> int:
    return sum(int((m.deployed()[0] == 0).sum()) for m in net.weight_layers())


def _n(net) -> int:
    return sum(m.weight.numel() for m in net.weight_layers())


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.95, 0.999])
@pytest.mark.parametrize("parametrisation", ["float", "ste", "discrete"])
def test_pruning_hits_the_requested_sparsity_exactly(fraction, parametrisation):
    net = build_network("mlp:37x11", (13,), 5, parametrisation, seed=3)
    if parametrisation == "discrete":  # fewer zeros than any target above 0.5, many ties
        with torch.no_grad():
            for m in net.weight_layers():
                m.weight.copy_(torch.sign(torch.randn_like(m.weight)) * (torch.rand_like(m.weight) > 0.2))
    before = _zeros(net)
    stats = prune_global(net, fraction)
    target = round(fraction * _n(net))
    assert _zeros(net) == max(target, before) == stats["zeros"]
    assert sparsity(net) == pytest.approx(stats["zeros"] / _n(net))


def test_float_pruning_removes_the_smallest_magnitudes():
    net = build_network("mlp:32", (10,), 3, "float", seed=0)
    before = [m.weight.detach().clone() for m in net.weight_layers()]
    prune_global(net, 0.6)
    pruned = torch.cat([b[m.weight == 0].abs() for b, m in zip(before, net.weight_layers(), strict=True)])
    kept = torch.cat([b[m.weight != 0].abs() for b, m in zip(before, net.weight_layers(), strict=True)])
    assert pruned.max() <= kept.min()


def test_ste_freeze_keeps_the_function_and_ties_follow_the_latent_weights():
    net = build_network("mlp:16", (6,), 3, "ste", seed=0)
    layer = net.weight_layers()[0]
    latent = layer.weight.detach().clone()
    x = torch.randn(7, 6)
    ref = net(x).detach()
    freeze_ternary(layer)
    assert layer.parametrisation == "discrete" and torch.allclose(net(x), ref, atol=1e-6)
    t = layer.weight.detach().clone()
    one = build_network("mlp:16", (6,), 3, "float", seed=0)  # prune only this layer: a one-layer view
    one.layers = torch.nn.ModuleList([layer])
    k_nonzero = int((t != 0).sum())
    prune_global(one, 1 - (k_nonzero - 5) / t.numel())  # remove exactly 5 more trits
    removed = (t != 0) & (layer.weight == 0)
    assert int(removed.sum()) == 5
    survivors = latent[(layer.weight != 0)].abs()
    assert latent[removed].abs().max() <= survivors.min()


def test_halo_ranking_needs_lambdas():
    net = build_network("mlp:8", (4,), 3, "float")
    with pytest.raises(OptionError):
        prune_global(net, 0.5, method="halo")
    with pytest.raises(OptionError):
        prune_settings(TrainConfig(extra={"prune": {"fraction": 0.5, "method": "halo"}}))
    for bad in (1.0, -0.1, "half"):
        with pytest.raises(OptionError):
            prune_settings(TrainConfig(extra={"prune": {"fraction": bad}}))


@pytest.mark.parametrize("method", ["ste", "conntra"])
def test_pruned_ternary_artifact_has_the_exact_zero_count(method, tmp_path):
    extra = {"penalty": {"kind": "halo", "xi": 1e-2, "psi": 1e-3}, "prune": {"fraction": 0.7, "method": "halo"}}
    cfg = TrainConfig(dataset="iris", model="mlp:16", method=method, epochs=10, batch_size=16, lr=1e-2, seed=1,
                      extra=extra)
    r = train(cfg, out=tmp_path / "m.tern", progress=False)
    model = load_model(tmp_path / "m.tern")
    n = model.num_weights()
    zeros = sum(int((layer.weight == 0).sum()) for layer in model.weight_layers)
    assert model.kind == "ternary" and zeros == max(round(0.7 * n), r.metrics["prune"]["zeros_before"])
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    with torch.no_grad():
        ref = r.net(torch.from_numpy(model.input.normalise(x))).numpy()
    assert np.allclose(model.forward(x), ref, atol=1e-5)  # the artifact is the pruned network
