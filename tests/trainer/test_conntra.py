import torch
import torch.nn.functional as F

from ternkit.trainer import ConntraRule, build_network


def _step(net, rule, x, y):
    rule.step(lambda backward=True: F.cross_entropy(net(x), y).backward() or torch.tensor(0.0))


def test_moves_are_the_top_k_of_the_explicit_score():
    """The fused-Adam computation of M, V and the proposal moves exactly the weights that the plain formulas
    pick: M <- b1 M + (1-b1) g, V <- b2 V + (1-b2) g^2, score |M|/sqrt(V) where the move is possible, top k."""
    torch.manual_seed(0)
    net = build_network("mlp:40", (30,), 5, "discrete", seed=0)
    rule = ConntraRule(net, total_steps=100, frac_start=0.1, frac_end=0.1)
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(9, 32, 30, generator=g), torch.randint(0, 5, (9, 32), generator=g)
    for i in range(8):  # build up averages (the first steps are all ties: |M|/sqrt(V) is the same everywhere)
        _step(net, rule, xs[i], ys[i])
    layer = net.weight_layers()[0]
    q0, m0, v0 = layer.weight.detach().clone(), rule.m[0].clone(), rule.v[0].clone()
    _step(net, rule, xs[8], ys[8])
    grad = layer.weight.grad
    m = rule.beta * m0 + (1 - rule.beta) * grad
    v = rule.beta2 * v0 + (1 - rule.beta2) * grad * grad
    score = m.abs() / v.sqrt()
    score[(q0 * m < 0)] = 0  # ternary: moving against sign(M) from q = -sign(M) leaves the range
    moved = layer.weight.detach() != q0
    k = int(moved.sum())
    assert k > 0
    expected = torch.zeros_like(moved).view(-1)
    expected[torch.topk(score.view(-1), k).indices] = True
    assert torch.equal(moved.view(-1), expected)
    assert torch.equal((layer.weight.detach() - q0)[moved], -torch.sign(m[moved]))  # one level against M
    assert torch.allclose(rule.m[0][~moved], m[~moved], rtol=1e-5, atol=1e-12) and (rule.m[0][moved] == 0).all()
