"""The CoNNTrA step's contracts beyond its arithmetic: nothing read back to the host per step (what serialises a
GPU), the move budget met from a sample on big layers, per-step state in a StepContext and param groups rather
than on the user's modules or parameters."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ternkit.nn import TernaryLinear
from ternkit.optim import CoNNTrA
from ternkit.trainer import ConntraRule, build_network
from ternkit.trainer.loop import fit
from ternkit.trainer.step_context import StepContext

_READS = ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "nonzero")


@contextlib.contextmanager
def _count_host_reads():
    """Counts the tensor methods that copy a value to the host (each one a GPU synchronisation)."""
    seen = {"n": 0}
    originals = {name: getattr(torch.Tensor, name) for name in _READS}

    def counting(real):
        def read(self, *a, **k):
            seen["n"] += 1
            return real(self, *a, **k)
        return read

    for name, real in originals.items():
        setattr(torch.Tensor, name, counting(real))
    try:
        yield seen
    finally:
        for name, real in originals.items():
            setattr(torch.Tensor, name, real)


def _data(n=256, d=30, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_step_reads_nothing_back_to_the_host():
    net = build_network("mlp:40x20", (30,), 5, "discrete", seed=0)
    opt = CoNNTrA(net, lr=1e-2, total_steps=20, frac_start=0.1, frac_end=0.01)
    x, y = _data()
    for i in range(6):
        opt.zero_grad()
        F.cross_entropy(net(x[32 * i:32 * i + 32]), y[32 * i:32 * i + 32]).backward()
        with _count_host_reads() as seen:
            opt.step()
        assert seen["n"] == 0, f"step {i} read {seen['n']} values back"
    assert opt.moves_last_step > 0  # the count is there when asked for (one read, outside the step)


def test_loop_reads_the_loss_once_per_epoch_not_per_step():
    net = build_network("mlp:16", (30,), 5, "discrete", seed=0)
    x, y = _data(n=640)
    rule = ConntraRule(net, total_steps=3 * 80)
    with _count_host_reads() as seen:
        hist = fit(net, rule, (x, y), (x[:0], y[:0]), epochs=3, batch_size=8, seed=0, progress=False)
    assert len(hist["epochs"]) == 3 and all(r["loss"] > 0 for r in hist["epochs"])
    assert seen["n"] <= 3 * 4, seen["n"]  # 240 steps; a few reads per epoch (loss, accuracy) only


def test_big_layer_meets_its_budget_from_a_sample():
    """Above 8,192 weights the threshold comes from a fixed sample: the moves per step are k on average."""
    torch.manual_seed(0)
    layer = nn.Sequential(TernaryLinear(200, 100, generator=torch.Generator().manual_seed(0)))  # 20,000 weights
    opt = CoNNTrA(layer, lr=1e-2, total_steps=1000, frac_start=0.01, frac_end=0.01)
    x, y = torch.randn(64, 200), torch.randn(64, 100)
    moved = []
    for _ in range(30):
        opt.zero_grad()
        F.mse_loss(layer(x + 0.3 * torch.randn_like(x)), y).backward()
        opt.step()
        moved.append(opt.moves_last_step)
    k = 0.01 * 20_000
    assert abs(sum(moved[5:]) / len(moved[5:]) - k) < 0.35 * k, moved
    assert max(moved) < 3 * k


def test_step_context_restricts_the_update_to_a_submatrix():
    net = build_network("mlp:40", (30,), 5, "discrete", seed=0)
    opt = CoNNTrA(net, lr=1e-2, total_steps=10, frac_start=0.2, frac_end=0.2)
    w = net.weight_layers()[0].weight
    rows, cols = torch.arange(0, 40, 2), torch.arange(0, 30, 3)
    inside = torch.zeros_like(w, dtype=torch.bool)
    inside[rows[:, None], cols[None, :]] = True
    x, y = _data()
    for i in range(3):
        ctx = StepContext()
        ctx.restrict(w, rows, cols)
        before, m_before = w.detach().clone(), opt.state[w]["m"].clone() if i else torch.zeros_like(w)
        opt.zero_grad()
        F.cross_entropy(net(x[:64]), y[:64]).backward()
        opt.step(context=ctx)
        assert torch.equal(w.detach()[~inside], before[~inside])
        assert torch.equal(opt.state[w]["m"][~inside], m_before[~inside])
        assert not torch.equal(w.detach()[inside], before[inside])


def test_no_state_on_the_users_modules_or_parameters():
    model = nn.Sequential(TernaryLinear(30, 16), nn.ReLU(), TernaryLinear(16, 5, method="float"))
    before = {name: set(vars(m)) for name, m in model.named_modules()}
    opt = CoNNTrA(model.parameters(), lr=1e-2, total_steps=5)  # bare parameters: levels come from the registry
    assert [g.get("levels") for g in opt.param_groups] == [None, 1]
    x, y = _data()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
    assert {name: set(vars(m)) for name, m in model.named_modules()} == before
    assert all(not vars(p) for p in model.parameters())  # no tags on parameters


@pytest.mark.parametrize("levels", [1, 3])
def test_moves_stay_in_range_and_one_level(levels):
    net = build_network("mlp:64", (30,), 5, "discrete", seed=0, levels=levels)
    opt = CoNNTrA(net, lr=1e-2, total_steps=20, frac_start=0.3, frac_end=0.3)
    x, y = _data()
    for i in range(8):
        prev = [m.weight.detach().clone() for m in net.weight_layers()]
        opt.zero_grad()
        F.cross_entropy(net(x[32 * i:32 * i + 32]), y[32 * i:32 * i + 32]).backward()
        opt.step()
        for p, m in zip(prev, net.weight_layers(), strict=True):
            w = m.weight.detach()
            assert torch.equal(w, w.round()) and w.abs().max() <= levels and (w - p).abs().max() <= 1
