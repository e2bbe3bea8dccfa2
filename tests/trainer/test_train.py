import math

import numpy as np
import pytest
import torch

from ternkit.core import load_model
from ternkit.core.errors import OptionError
from ternkit.trainer import ConntraRule, TrainConfig, build_network, train
from ternkit.trainer.api import make_rule
from ternkit.trainer.loop import Hooks, TrainingInterrupted


def _iris(**kw):
    base = dict(dataset="iris", model="mlp:16", epochs=60, batch_size=16, lr=1e-2, seed=1)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("method", ["conntra", "ste", "float"])
def test_methods_learn_iris(method, tmp_path):
    r = train(_iris(method=method), out=tmp_path / "m.tern", progress=False)
    assert r.metrics["val_error"] <= 0.1, r.metrics["val_error"]
    model = load_model(tmp_path / "m.tern")
    assert model.kind == ("float" if method == "float" else "ternary")
    # the artifact computes what the network computed
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with torch.no_grad():
        ref = r.net(torch.from_numpy(model.input.normalise(x))).numpy()
    assert np.allclose(model.forward(x), ref, atol=1e-5)
    assert (tmp_path / "m.metrics.json").exists()


def test_exact_mode_learns_iris():
    r = train(_iris(mode="exact", epochs=25, exact_coords=16), progress=False)
    assert r.metrics["val_error"] <= 0.1


def test_conntra_weights_stay_discrete_and_moves_are_one_level():
    net = build_network("mlp:32", (4,), 3, "discrete", levels=2)
    rule = ConntraRule(net, total_steps=50, frac_start=0.2, frac_end=0.05)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    before = [layer.weight.detach().clone() for layer in net.weight_layers()]
    for _ in range(5):
        prev = [layer.weight.detach().clone() for layer in net.weight_layers()]
        rule.step(lambda backward=True: _loss(net, x, y, backward))
        for p, layer in zip(prev, net.weight_layers(), strict=True):
            w = layer.weight.detach()
            assert torch.equal(w, w.round()) and w.abs().max() <= 2
            assert (w - p).abs().max() <= 1  # one level per step, never a jump over 0
    assert any(not torch.equal(b, layer.weight) for b, layer in zip(before, net.weight_layers(), strict=True))


def _loss(net, x, y, backward):
    loss = torch.nn.functional.cross_entropy(net(x), y)
    if backward:
        loss.backward()
    return loss.detach()


def test_seed_reproducible_and_resume_equal(tmp_path):
    a = train(_iris(epochs=6), out=tmp_path / "a.tern", progress=False).model
    b = train(_iris(epochs=6), out=tmp_path / "b.tern", progress=False).model
    for la, lb in zip(a.weight_layers, b.weight_layers, strict=True):
        assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.scale, lb.scale)


SAMPLED = {"approx": {"method": "bernoulli", "ratio": 0.5}, "dropout": {"kind": "mask", "rates": [0.5]}}
SUBMATRIX = {"approx": {"method": "crs", "ratio": 0.5}, "dropout": {"kind": "batchwise", "rates": [0.5]}}


def _cfg(method, extra, schedule):
    return _iris(method=method, epochs=4, model="mlp:16x16", extra=extra, lr_schedule=schedule)


@pytest.mark.parametrize("method,extra,schedule", [("conntra", {}, "constant"), ("float", {}, "constant"),
                                                   ("float", SAMPLED, "cosine"), ("conntra", SUBMATRIX, "constant")])
def test_interrupt_saves_checkpoint_and_resume_completes(tmp_path, monkeypatch, method, extra, schedule):
    """Resumed mid-epoch, the run ends where an uninterrupted one does -- with random techniques too (their
    draws are a function of the step, not of RNG state lost with the process)."""
    from ternkit.trainer import conntra, rules

    calls = {"n": 0}
    originals = {cls: cls.step for cls in (rules.UpdateRule, conntra.ConntraRule)}

    def interrupting(real):
        def step(self, closure):
            calls["n"] += 1
            if calls["n"] == 20:
                raise KeyboardInterrupt
            return real(self, closure)
        return step

    for cls, real in originals.items():
        monkeypatch.setattr(cls, "step", interrupting(real))
    with pytest.raises(TrainingInterrupted):
        train(_cfg(method, extra, schedule), out=tmp_path / "m.tern", progress=False)
    assert (tmp_path / "m.tern.ckpt").exists() and not (tmp_path / "m.tern").exists()
    for cls, real in originals.items():
        monkeypatch.setattr(cls, "step", real)
    cfg = _cfg(method, extra, schedule)
    resumed = train(cfg, out=tmp_path / "m.tern", resume=True, progress=False).model
    straight = train(cfg, progress=False).model
    for la, lb in zip(resumed.weight_layers, straight.weight_layers, strict=True):
        assert np.allclose(la.weight, lb.weight, atol=1e-6)


@pytest.mark.parametrize("method", ["float", "conntra"])
def test_cosine_schedule_sets_adams_rate_each_step(method):
    cfg = _iris(method=method, lr_schedule="cosine")
    seen = []
    r = train(cfg, hooks=Hooks(before_step=[lambda net, step: seen.append(step)]), progress=False)
    assert r.metrics["val_error"] <= 0.1 and len(seen) == 60 * 8
    net = build_network("mlp:16", (4,), 3, "float" if method == "float" else "discrete")
    rule = make_rule(cfg, net, total_steps=10)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    rates = []
    for _ in range(10):
        rule.step(lambda backward=True: _loss(net, x, y, backward))
        rates.append(rule.optimizer.param_groups[0]["lr"])
    expected = [0.5 * 1e-2 * (1 + math.cos(math.pi * i / 10)) for i in range(10)]
    assert np.allclose(rates, expected) and rates[-1] < 0.03 * rates[0]


def test_bad_schedule_is_one_clear_error():
    with pytest.raises(OptionError, match="--lr-schedule"):
        _iris(lr_schedule="linear").validate()
