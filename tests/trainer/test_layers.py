import pytest
import torch
import torch.nn.functional as F

from ternkit.trainer.layers import QuantLayer, ternarize_twn


@pytest.mark.parametrize("kind,scale_mode", [("dense", "channel"), ("dense", "layer"), ("conv", "channel")])
def test_discrete_layer_scales_the_output_as_if_it_scaled_the_matrix(kind, scale_mode):
    """The integer matrix is multiplied unscaled and the scale applied to the output: the same function and
    the same gradients as multiplying by q * scale."""
    layer = QuantLayer(kind, 6, 5, "discrete", kernel=3, padding=1, scale_mode=scale_mode,
                       generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.scale.uniform_(0.5, 2.0)
        layer.bias.normal_()
    x = torch.randn(4, 6) if kind == "dense" else torch.randn(4, 6, 7, 7)
    out = layer(x)
    out.square().sum().backward()
    got = [p.grad.clone() for p in (layer.weight, layer.scale, layer.bias)]
    layer.zero_grad()
    w = layer.effective_weight()
    ref = F.linear(x, w, layer.bias) if kind == "dense" else F.conv2d(x, w, layer.bias, padding=1)
    ref.square().sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    for g, p in zip(got, (layer.weight, layer.scale, layer.bias), strict=True):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-5)


def test_ste_forward_is_ternary_and_the_gradient_passes_straight_through():
    layer = QuantLayer("dense", 20, 5, "ste", generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 20)
    layer(x).square().sum().backward()
    w = layer.weight.detach()
    t, alpha = ternarize_twn(w)
    assert set(t.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # TWN: |w| above 0.7 * mean|w| keeps its sign, alpha is the mean of those |w|
    kept = w.abs() > 0.7 * w.abs().mean()
    assert torch.equal(t, torch.sign(w) * kept) and torch.isclose(alpha[0], w.abs()[kept].mean())
    wq = (alpha * t).requires_grad_()
    F.linear(x, wq, layer.bias).square().sum().backward()
    assert torch.allclose(layer.weight.grad, wq.grad)
