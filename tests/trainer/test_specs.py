import pytest

from ternkit.core import OptionError
from ternkit.trainer import build_network, parse_model_spec
from ternkit.trainer.specs import ConvPlan, DensePlan


def test_parse():
    assert parse_model_spec("mlp:512x256") == [DensePlan(512), DensePlan(256)]
    assert parse_model_spec("cnn:8c3s2-16c5s2p0-64") == [ConvPlan(8, 3, 2, 1), ConvPlan(16, 5, 2, 0), DensePlan(64)]
    assert len(parse_model_spec("cnn")) == 3


@pytest.mark.parametrize("spec", ["mlp", "mlp:", "rnn:5", "mlp:0", "mlp:12a", "cnn:64-8c3", "cnn:8x3"])
def test_bad_specs(spec):
    with pytest.raises(OptionError):
        parse_model_spec(spec)


def test_cnn_shapes():
    net = build_network("cnn:8c5s2-16c5s2-32", (1, 28, 28), 10, "discrete")
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["QuantLayer", "ReLU", "QuantLayer", "ReLU", "Flatten", "QuantLayer", "ReLU", "QuantLayer"]
    assert net.layers[5].weight.shape == (32, 16 * 7 * 7)
    with pytest.raises(OptionError, match="image input"):
        build_network("cnn", (4,), 3, "float")


@pytest.mark.parametrize("spec, kinds", [
    ("cnn:8c3s2bnr6-dw3bnhs-se-16c1bn-gap", {"clip", "hardswish", "hardsigmoid", "mul"}),
    ("mbv2:8-12x2-16", {"clip", "add"}),
])
def test_edge_tokens_build_and_trace(spec, kinds):
    """r6 / hs activations, the se block and the mbv2 family reach the artifact as the operations they name."""
    import numpy as np
    import torch

    import ternkit

    net = build_network(spec, (1, 16, 16), 10, "discrete")
    x = torch.randn(16, 1, 16, 16)
    art = ternkit.to_artifact(net.eval(), x, recalibrate=x)
    assert kinds <= {n.op.kind for n in art.nodes}
    with torch.no_grad():
        np.testing.assert_allclose(art.forward(x.numpy()), net(x).numpy(), rtol=1e-4, atol=1e-4)


def test_edge_tokens_in_the_help():
    from ternkit.trainer.specs import SPEC_HELP

    assert all(t in SPEC_HELP for t in ("[r6|hs]", " se ", "mbv2:"))
