"""CoNNTrA's compiled CPU step (trainer/native.py, trainer/conntra_step.c) against its torch form.

The two forms implement one rule; they may differ only in float rounding. So from one state, one step must give
the same moments and move the same weights, except weights whose score lies within rounding of the threshold."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ternkit.trainer import native
from ternkit.trainer.layers import QuantLayer
from ternkit.trainer.optim import _ABOVE, _EPS, CoNNTrA

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler here: CoNNTrA runs its torch form")


def _net(n_in: int, n_out: int, levels: int = 1, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.Sequential(QuantLayer("dense", n_in, n_out, "discrete", levels=levels, generator=g),
                               torch.nn.ReLU(), QuantLayer("dense", n_out, 5, "discrete", levels=levels, generator=g))


def _warm(net: torch.nn.Module, opt: CoNNTrA, steps: int, seed: int = 1) -> None:
    """A few steps so that M and V are averages, not the first step's ties."""
    g = torch.Generator().manual_seed(seed)
    n_in = net[0].in_features
    for _ in range(steps):
        x, y = torch.randn(32, n_in, generator=g), torch.randint(0, 5, (32,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()


def _one_step(n_in: int, n_out: int, *, levels: int = 1, zero_bonus: float = 0.0, frac: float = 0.02):
    """(net before, after the compiled step, after the torch step, optimizer before): one step from one state."""
    net = _net(n_in, n_out, levels)
    opt = CoNNTrA(net, 1e-3, total_steps=100, frac_start=frac, frac_end=frac, zero_bonus=zero_bonus,
                  kernel="torch")
    _warm(net, opt, 6)
    x = torch.randn(32, n_in, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, 5, (32,), generator=torch.Generator().manual_seed(98))
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    out = {}
    for kernel in ("native", "torch"):
        n2 = _net(n_in, n_out, levels, seed=5)
        n2.load_state_dict(net.state_dict())
        o2 = CoNNTrA(n2, 1e-3, total_steps=100, frac_start=frac, frac_end=frac, zero_bonus=zero_bonus, kernel=kernel)
        o2.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch would share the state tensors
        for a, b in zip(n2.parameters(), net.parameters(), strict=True):
            a.grad = b.grad.clone()
        o2.step()
        out[kernel] = (n2, o2)
    return net, opt, out


def _scores(opt: CoNNTrA, p: torch.Tensor, levels: int, zero_bonus: float) -> torch.Tensor:
    """The rule's score of each weight after this step's moments, in float64 (the reference ranking)."""
    st = opt.state[p]
    g = p.grad.double()
    step = float(st["step"]) + 1
    m = opt.beta * st["m"].double() + (1 - opt.beta) * g
    v = opt.beta2 * st["v"].double() + (1 - opt.beta2) * g * g
    prop = -(m / (1 - opt.beta ** step)) / ((v / (1 - opt.beta2 ** step)).sqrt() + _EPS)
    q = p.detach().double()
    score = prop.abs().masked_fill((q * prop > 0) & (q.abs() == levels), 0.0)
    return torch.where((q * prop < 0) & (q.abs() == 1), score * (1 + zero_bonus), score)


@pytest.mark.parametrize("n_in,n_out,levels,zero_bonus", [
    (30, 40, 1, 0.0),      # small layers: the threshold is exact
    (300, 64, 1, 0.0),     # a big first layer (19,200 weights): the threshold from the fixed sample
    (30, 40, 2, 0.0),      # five levels
    (300, 64, 1, 0.5),     # the zero bonus
])
def test_compiled_step_equals_the_torch_form(n_in, n_out, levels, zero_bonus):
    net, opt, out = _one_step(n_in, n_out, levels=levels, zero_bonus=zero_bonus)
    (nn_, on), (nt, ot) = out["native"], out["torch"]
    for p, pn, pt in zip(net.parameters(), nn_.parameters(), nt.parameters(), strict=True):
        if p.dim() != 2:  # scales and biases: Adam in both forms (compiled or torch's), to float rounding
            assert torch.allclose(pn, pt, rtol=1e-5, atol=1e-7)
            continue
        sn, st = on.state[pn], ot.state[pt]
        assert torch.equal(sn["step"], st["step"])
        assert torch.allclose(sn["v"], st["v"], rtol=1e-6, atol=0)
        moved_n, moved_t = pn.detach() != p.detach(), pt.detach() != p.detach()
        assert moved_n.any()
        # M: the plain formula where the weight stayed (bit for bit), 0 where it moved
        m = opt.beta * opt.state[p]["m"] + (1 - opt.beta) * p.grad
        assert torch.equal(sn["m"][~moved_n], m[~moved_n]) and (sn["m"][moved_n] == 0).all()
        # a move is one level against M, never out of {-L..L}
        d = (pn - p).detach()
        assert torch.equal(d[moved_n], -torch.sign(m[moved_n])) and pn.detach().abs().max() <= levels
        # the moved sets agree except within rounding of the threshold
        score = _scores(opt, p, levels, zero_bonus)
        differ = moved_n != moved_t
        if differ.any():
            t = score[moved_n | moved_t].min()
            assert ((score[differ] - t).abs() <= 1e-5 * t).all()


def test_small_layers_move_exactly_their_budget_of_the_best_scores():
    """Exact threshold (layers of up to 8,192 weights): the k weights of highest score move, nothing else."""
    frac = 0.05
    net, opt, out = _one_step(30, 40, frac=frac)
    nn_, on = out["native"]
    for i, (p, pn) in enumerate(zip(net.parameters(), nn_.parameters(), strict=True)):
        if p.dim() != 2:
            continue
        score = _scores(opt, p, 1, 0.0).view(-1)
        moved = (pn != p).detach().view(-1)
        k = int(moved.sum())
        budget = opt._budget(i // 3, p.numel(), frac, 2)
        assert k <= budget and k >= budget - 1  # one fewer where the (k+1)-th ties the k-th exactly
        best = torch.topk(score, k).indices
        assert moved[best].all()


def test_big_layer_moves_about_its_budget():
    """Sampled threshold: the expected number of moves is the budget; over many layers' worth of steps the
    count stays within a few standard deviations of it."""
    net = _net(784, 128)
    opt = CoNNTrA(net, 1e-3, total_steps=1000, frac_start=0.01, frac_end=0.01, kernel="native")
    _warm(net, opt, 5)
    counts, g = [], torch.Generator().manual_seed(5)
    for _ in range(20):
        before = net[0].weight.detach().clone()
        x, y = torch.randn(32, 784, generator=g), torch.randint(0, 5, (32,), generator=g)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        counts.append(int((net[0].weight.detach() != before).sum()))
    k = 0.01 * 784 * 128
    mean = sum(counts) / len(counts)
    assert abs(mean - k) < 4 * math.sqrt(k), (mean, k)


def test_same_seed_same_weights_and_resume_is_exact():
    """The compiled step is deterministic, and a state_dict round trip mid-run changes nothing."""
    def run(split: int | None) -> list[torch.Tensor]:
        net = _net(300, 64)
        opt = CoNNTrA(net, 1e-3, total_steps=40, kernel="native")
        g = torch.Generator().manual_seed(3)
        for s in range(40):
            if s == split:
                state, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(net.state_dict())
                net = _net(300, 64, seed=7)
                net.load_state_dict(weights)
                opt = CoNNTrA(net, 1e-3, total_steps=40, kernel="native")
                opt.load_state_dict(state)
            x, y = torch.randn(32, 300, generator=g), torch.randint(0, 5, (32,), generator=g)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        assert float(opt.state[net[0].weight]["step"]) == 40  # the counter the state_dict carries
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = run(None), run(None), run(17)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_submatrix_step_updates_only_the_submatrix():
    """Batchwise dropout's context: only the active rows/columns and their averages change, in both forms."""
    from ternkit.trainer.step_context import StepContext

    for kernel in ("native", "torch"):
        net = _net(40, 30)
        opt = CoNNTrA(net, 1e-3, total_steps=10, frac_start=0.2, frac_end=0.2, kernel=kernel)
        _warm(net, opt, 3)
        w = net[0].weight
        rows, cols = torch.tensor([0, 3, 5, 7]), torch.tensor([1, 2, 10, 20, 30])
        ctx = StepContext()
        ctx.restrict(w, rows, cols)
        before, m_before = w.detach().clone(), opt.state[w]["m"].clone()
        opt.zero_grad()
        F.cross_entropy(net(torch.randn(16, 40)), torch.randint(0, 5, (16,))).backward()
        opt.step(context=ctx)
        inside = torch.zeros_like(w, dtype=torch.bool)
        inside[rows[:, None], cols[None, :]] = True
        assert torch.equal(w.detach()[~inside], before[~inside])
        assert torch.equal(opt.state[w]["m"][~inside], m_before[~inside])
        assert not torch.equal(opt.state[w]["m"][inside], m_before[inside])


def test_kernel_option_is_checked(monkeypatch):
    net = _net(10, 8)
    with pytest.raises(ValueError, match="kernel must be one of"):
        CoNNTrA(net, 1e-3, kernel="fast")
    monkeypatch.setattr(native, "library", lambda: None)  # a machine without a C compiler
    with pytest.raises(ValueError, match="needs a C compiler"):
        CoNNTrA(net, 1e-3, kernel="native")
    opt = CoNNTrA(net, 1e-3, kernel="auto")  # falls back to the torch form and trains
    _warm(net, opt, 2)
    assert float(opt.state[net[0].weight]["step"]) == 2


def test_no_compiler_means_the_torch_form(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(native, "_compiler", lambda: None)
    native.library.cache_clear()
    try:
        assert native.library() is None
    finally:
        native.library.cache_clear()


def test_cache_is_written_atomically_and_a_damaged_entry_is_built_again(tmp_path):
    """Fresh processes (a process keeps the library it mapped): the first builds the cache entry, leaving no
    temporary; after the entry is damaged (a truncated write, a bad disk), the next one builds it again."""
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    probe = [sys.executable, "-c", "from ternkit.trainer import native; assert native.library() is not None"]
    subprocess.run(probe, env=env, check=True, timeout=120)
    cache = home / ".cache" / "ternkit" / "native"
    (built,) = cache.glob("conntra_step-*.so")
    assert built.read_bytes()[:4] == b"\x7fELF" and [f.name for f in cache.iterdir()] == [built.name]
    built.write_bytes(b"not a library")
    subprocess.run(probe, env=env, check=True, timeout=120)
    assert built.read_bytes()[:4] == b"\x7fELF"


def test_threshold_lies_just_above_the_budget_th_score():
    """The C selection (heap, no sort) returns the (j+1)-th largest score, times the margin, for budgets below
    and above half the sample (the two branches of kth_largest)."""
    lib = native.library()
    n = 5000
    g = torch.Generator().manual_seed(0)
    for j in (0, 7, 2499, 2500, 4998):
        q = torch.randint(-1, 2, (n,), generator=g).float()
        m, v, grad = torch.zeros(n), torch.zeros(n), torch.randn(n, generator=g)
        pbuf, sbuf = torch.empty(8192), torch.empty(8192)
        moved, (t,) = native.step_tensors(lib, [(q.clone(), m, v, grad)], chunks=[torch.zeros(1, dtype=torch.int64)],
                                          chunk=[n], j=[j], levels=[1], steps=[1.0], beta1=0.9, beta2=0.999, eps=1.0,
                                          bonus=0.0, above=_ABOVE, floor=1e-20, pbuf=pbuf, sbuf=sbuf)
        # eps = 1 makes the scores distinct: |P| = |g| / (|g| + 1) where the move is possible
        prop = -grad / (grad.abs() + 1.0)
        score = prop.abs().masked_fill(q * prop > 0, 0.0)
        expected = torch.sort(score, descending=True).values[j]
        assert t == pytest.approx(max(float(expected) * _ABOVE, 1e-20), rel=1e-6)
        assert moved == [min(j, int((score > 0).sum()))]  # distinct scores: the budget, or every possible move


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_compiled_adam_equals_torch_adam_on_continuous_parameters(weight_decay):
    """Scales, biases and any other continuous parameter: the compiled Adam follows torch's Adam (L2 weight
    decay included) to float rounding over many steps, and its step counters are the ones state_dict saves."""
    g = torch.Generator().manual_seed(0)
    params = {k: [torch.nn.Parameter(torch.randn(300, generator=g)), torch.nn.Parameter(torch.randn(7, 3))]
              for k in ("native", "torch")}
    params["torch"][0].data.copy_(params["native"][0].data)
    params["torch"][1].data.copy_(params["native"][1].data)
    opts = {k: CoNNTrA(ps, 1e-2, kernel=k, weight_decay=weight_decay) for k, ps in params.items()}
    for _ in range(50):
        grads = [torch.randn(p.shape, generator=g) for p in params["native"]]
        for k, ps in params.items():
            for p, gr in zip(ps, grads, strict=True):
                p.grad = gr.clone()
            opts[k].step()
    for a, b in zip(params["native"], params["torch"], strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, params["native"][0].new_tensor(0)) and float(opts["native"].state[a]["step"]) == 50
    state = opts["native"].state_dict()["state"]
    assert [float(s["step"]) for s in state.values()] == [50.0, 50.0]
