import pytest
import torch

from ternkit.cli import main
from ternkit.core.errors import OptionError
from ternkit.trainer import Hooks, TrainConfig, build_network, train
from ternkit.trainer.halo import LAMBDA_FLOOR, Penalty, penalty_settings


def _attached(kind="halo", parametrisation="float", **kw):
    net = build_network("mlp:8", (4,), 3, parametrisation, seed=0)
    pen, hooks = Penalty(kind, **kw), Hooks()
    pen.attach(net, hooks, TrainConfig())
    return net, pen, hooks


def test_halo_gradient_reaches_lambda_and_matches_the_formula():
    net, pen, hooks = _attached(xi=0.3, psi=0.2)
    with torch.no_grad():  # lambdas away from 1 and above the floor, some negative
        for lam in net.halo_lambda:
            lam.copy_(torch.empty_like(lam).uniform_(0.3, 2.0) * torch.sign(torch.randn_like(lam)))
    loss = hooks.loss_terms[0](net, torch.zeros(1, 4), torch.zeros(1, 3))
    loss.backward()
    for layer, lam in zip(net.weight_layers(), net.halo_lambda, strict=True):
        w, lv = layer.weight.detach(), lam.detach()
        expected = -2 * 0.3 * w.abs() / lv ** 3 + 0.2 * torch.sign(lv)
        assert lam.grad is not None and torch.allclose(lam.grad, expected, rtol=1e-4, atol=1e-7)
        assert torch.allclose(layer.weight.grad, 0.3 * torch.sign(w) / lv ** 2, rtol=1e-4, atol=1e-7)


def test_lambda_floor_keeps_the_penalty_finite():
    net, pen, hooks = _attached(xi=1.0, psi=0.0)
    with torch.no_grad():
        for lam in net.halo_lambda:
            lam.zero_()
    loss = hooks.loss_terms[0](net, torch.zeros(1, 4), torch.zeros(1, 3))
    total_abs = sum(float(m.weight.detach().abs().sum()) for m in net.weight_layers())
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(total_abs / LAMBDA_FLOOR ** 2, rel=1e-4)


def test_l1_gradient_is_the_strength_times_sign():
    net, pen, hooks = _attached("l1", strength=0.01)
    hooks.loss_terms[0](net, torch.zeros(1, 4), torch.zeros(1, 3)).backward()
    for layer in net.weight_layers():
        assert torch.allclose(layer.weight.grad, 0.01 * torch.sign(layer.weight.detach()))
        assert layer.bias.grad is None  # biases are not penalised


def test_conntra_penalty_favours_moves_toward_zero_and_holds_zeros():
    net, pen, hooks = _attached("l1", "discrete", strength=0.5)
    layer = net.weight_layers()[0]
    s = layer.scale.detach().reshape(-1, 1)
    task = torch.randn_like(layer.weight) * (0.5 * s)  # task gradient around the penalty's size
    layer.weight.grad = task.clone()
    penalty_grad = torch.autograd.grad(hooks.loss_terms[0](net, None, torch.zeros(())), layer.weight)[0]
    q = layer.weight.detach()
    # on +-1 the penalty's gradient has q's sign: CoNNTrA moves against sign(M), i.e. toward 0
    assert torch.allclose(penalty_grad, 0.5 * s * torch.sign(q))
    # on 0 the task gradient is soft-thresholded by the penalty a move away would add
    hooks.after_backward[0](net)
    zero = q == 0
    assert zero.any() and (~zero).any()
    expected = torch.sign(task) * (task.abs() - 0.5 * s.expand_as(task)).clamp_min(0)
    assert torch.allclose(layer.weight.grad[zero], expected[zero])
    assert torch.equal(layer.weight.grad[~zero], task[~zero])


@pytest.mark.parametrize("method", ["float", "ste", "conntra"])
def test_halo_trains_lambdas_and_sparsifies(method):
    base = dict(dataset="iris", model="mlp:16", method=method, epochs=25, batch_size=16, lr=1e-2, seed=1)
    plain = train(TrainConfig(**base), progress=False)
    halo = train(TrainConfig(**base, extra={"penalty": {"kind": "halo", "xi": 1e-2, "psi": 1e-3}}), progress=False)
    lambdas = torch.cat([lam.detach().reshape(-1) for lam in halo.net.halo_lambda])
    assert not torch.allclose(lambdas, torch.ones_like(lambdas))  # the rule's Adam fitted them
    assert halo.metrics["penalty"]["kind"] == "halo"
    assert _small_fraction(halo.net) > _small_fraction(plain.net) + 0.1
    assert halo.metrics["val_error"] <= 0.2


def _small_fraction(net) -> float:
    """Share of deployed weights that are 0 (ternary) or below 2 % of the layer's largest (float)."""
    total, small = 0, 0
    for layer in net.weight_layers():
        w, s = layer.deployed()
        w = (w * s.reshape((-1,) + (1,) * (w.dim() - 1))).abs()
        small += int((w <= 0.02 * w.max()).sum())
        total += w.numel()
    return small / total


def test_settings_validation():
    assert penalty_settings(TrainConfig()) is None
    assert penalty_settings(TrainConfig(extra={"penalty": {"kind": "halo"}}))["xi"] > 0
    for bad in ({"kind": "l2"}, {"kind": "halo", "xi": -1}, {"kind": "l1", "strength": "x"},
                {"kind": "halo", "strength": 1}):
        with pytest.raises(OptionError):
            penalty_settings(TrainConfig(extra={"penalty": bad}))


@pytest.mark.parametrize("argv", [["--halo-xi", "1"], ["--penalty", "halo", "--l1", "1"],
                                  ["--penalty", "l1", "--l1", "-3"], ["--prune-method", "halo"],
                                  ["--prune", "1.5"], ["--prune", "0.5", "--prune-method", "halo"],
                                  ["--penalty", "bogus"]])
def test_cli_bad_penalty_options_are_one_line(argv, tmp_path, capsys):
    code = main(["train", "--dataset", "iris", "--quiet", "--out", str(tmp_path / "m.tern"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.tern").exists()
