"""Conformance of every registered operation (the pattern of scikit-learn's parametrize_with_checks): shape
inference vs forward, forward vs torch, file round trip bit-exact, counts vs a brute-force count."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_examples import MODELS, example_input, example_model

from ternkit.core import OPS, Node, load_model, save_model
from ternkit.core.ops import Add, AvgPool2d, Concat, Conv2d, Dense, MaxPool2d

TORCH = {
    "dense": lambda op, x: F.linear(x, torch.tensor(op.weight, dtype=torch.float32)) * torch.tensor(op.scale)
    + torch.tensor(op.bias),
    "conv2d": lambda op, x: F.conv2d(x, torch.tensor(op.weight, dtype=torch.float32), None, op.stride, op.padding,
                                     1, op.groups) * torch.tensor(op.scale).view(-1, 1, 1)
    + torch.tensor(op.bias).view(-1, 1, 1),
    "affine": lambda op, x: x * torch.tensor(op.scale).view(1, -1, *[1] * (x.dim() - 2))
    + torch.tensor(op.bias).view(1, -1, *[1] * (x.dim() - 2)),
    "avgpool2d": lambda op, x: F.avg_pool2d(x, op.kernel, op.stride, op.padding),
    "avgpool2d_exclude_pad": lambda op, x: F.avg_pool2d(x, op.kernel, op.stride, op.padding,
                                                        count_include_pad=False),
    "maxpool2d": lambda op, x: F.max_pool2d(x, op.kernel, op.stride, op.padding, ceil_mode=op.ceil_mode),
    "relu": lambda op, x: F.relu(x),
    "flatten": lambda op, x: x.flatten(1),
    "clip": lambda op, x: torch.clamp(x, op.low, op.high),
    "hardswish": lambda op, x: F.hardswish(x),
    "hardsigmoid": lambda op, x: F.hardsigmoid(x),
    "sigmoid": lambda op, x: torch.sigmoid(x),
    "silu": lambda op, x: F.silu(x),
    "tanh": lambda op, x: torch.tanh(x),
    "gelu": lambda op, x: F.gelu(x, approximate=op.approximate),
    "scale_shift": lambda op, x: x * op.mul + op.add,
    "reshape": lambda op, x: x.reshape(len(x), *op.shape),
    "transpose": lambda op, x: x.permute(0, *(p + 1 for p in op.perm)),
    "slice": lambda op, x: x.narrow(op.axis + 1, op.start, op.stop - op.start),
}
MULTI = {"add": lambda xs: sum(xs[1:], xs[0]), "concat": lambda xs: torch.cat(xs, 1),
         "mul": lambda xs: xs[0] * xs[1]}  # operations on several inputs


def test_every_registered_operation_has_an_example_and_a_torch_twin():
    covered = {n.op.kind for make in MODELS for n in example_model(make).nodes}
    assert covered == set(OPS)
    assert set(TORCH) | set(MULTI) == set(OPS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shape_inference_matches_forward(name):
    model = example_model(name)
    x = example_input(model, 3)
    for out, shape in zip(model.activations(x), model.shapes(), strict=True):
        assert out.shape == (3, *shape) and out.dtype == np.float32


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_matches_torch(name):
    model = example_model(name)
    vals = {"input": torch.tensor(model.input.normalise(example_input(model, 4)))}
    for n, ours in zip(model.nodes, model.activations(example_input(model, 4)), strict=True):
        ins = [vals[i] for i in n.inputs]
        ref = MULTI[n.op.kind](ins) if n.op.kind in MULTI else TORCH[n.op.kind](n.op, ins[0])
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{name}: {n.name}")
        vals[n.name] = torch.tensor(ours)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_is_bit_exact(name, tmp_path):
    model = example_model(name)
    save_model(model, tmp_path / "m.tern")
    back = load_model(tmp_path / "m.tern")
    assert [(n.name, n.op.kind, n.inputs, n.op.attrs()) for n in back.nodes] == \
        [(n.name, n.op.kind, n.inputs, n.op.attrs()) for n in model.nodes]
    for a, b in zip(model.layers, back.layers, strict=True):
        for key, arr in a.arrays("ternary", 2).items():
            assert np.array_equal(arr, b.arrays("ternary", 2)[key])
    x = example_input(model)
    assert np.array_equal(model.forward(x), back.forward(x))
    assert model.fingerprint() == back.fingerprint()


def _brute_window(in_shape, out_shape, kernel, stride, padding, weight_nz=None, groups=1):
    """Count (output element, input element) pairs a window operation connects, by enumeration."""
    c_in, h, w = in_shape
    c_out, oh, ow = out_shape
    conn = nz = 0
    for co, y, x in itertools.product(range(c_out), range(oh), range(ow)):
        g = co // (c_out // groups)
        chans = range(g * (c_in // groups), (g + 1) * (c_in // groups)) if weight_nz is not None else [co]
        for ci, a, b in itertools.product(chans, range(kernel[0]), range(kernel[1])):
            iy, ix = y * stride[0] - padding[0] + a, x * stride[1] - padding[1] + b
            if 0 <= iy < h and 0 <= ix < w:
                conn += 1
                nz += 1 if weight_nz is None else int(weight_nz[co, ci - g * (c_in // groups), a, b])
    return conn, nz


@pytest.mark.parametrize("name", sorted(MODELS))
def test_counts_match_brute_force(name):
    model = example_model(name)
    shapes = model.shape_map()
    for n, c in zip(model.nodes, model.counts(), strict=True):
        ins, out = [shapes[i] for i in n.inputs], shapes[n.name]
        op = n.op
        assert c.outputs == int(np.prod(out))
        if isinstance(op, Dense):
            expect = (op.weight.size, int((op.weight != 0).sum()))
        elif isinstance(op, Conv2d):
            expect = _brute_window(ins[0], out, op.kernel, op.stride, op.padding, op.weight != 0, op.groups)
        elif isinstance(op, AvgPool2d | MaxPool2d):
            expect = _brute_window(ins[0], out, op.kernel, op.stride, op.padding)  # out: ceil_mode's size
        elif isinstance(op, Add):
            expect = (sum(int(np.prod(s)) for s in ins),) * 2
        elif isinstance(op, Concat):
            expect = (int(np.prod(out)),) * 2
        else:  # elementwise, shape and affine operations: no connections
            assert not op.has_weights and not isinstance(op, Add | Concat | AvgPool2d | MaxPool2d)
            expect = (0, 0)
        assert (c.connections, c.nonzero) == expect, f"{name}: {n.name}"


def test_padded_conv_counts_exclude_padding():
    model = example_model("conv2d")
    conv = model.nodes[0].op
    dense_macs = conv.weight.size // conv.out_channels * conv.out_channels * 16  # every tap of 4x4 outputs
    assert model.counts()[0].connections < dense_macs


def test_batchnorm_folding_changes_no_output_beyond_rounding():
    """A weight operation followed by BatchNorm (in torch) equals the folded operation."""
    rng = np.random.default_rng(3)
    model = example_model("conv2d")
    op = model.nodes[0].op
    bn = torch.nn.BatchNorm2d(op.out_channels).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.2, 3), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    from ternkit.core.ops import batchnorm_affine

    gain, shift = batchnorm_affine(bn.running_mean.numpy(), bn.running_var.numpy(), bn.weight.detach().numpy(),
                                   bn.bias.detach().numpy(), bn.eps)
    folded = op.with_affine(gain, shift)
    x = rng.normal(0, 1, (5, *model.input.shape)).astype(np.float32)
    ref = bn(torch.tensor(op.forward(x))).detach().numpy()
    np.testing.assert_allclose(folded.forward(x), ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(folded.weight, op.weight)  # the trits are untouched


def test_graph_validation_names_the_node():
    from ternkit.core import ArtifactError

    model = example_model("add")
    nodes = list(model.nodes)
    nodes[5] = Node("sum", Add(), ("r0", "nowhere"))
    model.nodes = nodes
    with pytest.raises(ArtifactError, match="sum reads 'nowhere'"):
        model.validate()
    model = example_model("add")
    model.nodes = [n if n.name != "sum" else Node("sum", Add(), ("r0",)) for n in model.nodes]
    with pytest.raises(ArtifactError, match="sum"):
        model.validate()


def test_version_1_files_still_load():
    from pathlib import Path

    here = Path(__file__).parent / "fixtures"
    model = load_model(here / "v1_cnn.tern")
    assert [n.op.kind for n in model.nodes] == ["conv2d", "relu", "flatten", "dense"] and model.is_chain
    x = np.load(here / "v1_cnn_input.npy")
    # same weights, same arithmetic; only BLAS's summation order may differ between machines (seen: 4.8e-7)
    np.testing.assert_allclose(model.forward(x), np.load(here / "v1_cnn_logits.npy"), rtol=1e-6, atol=1e-5)
    assert model.provenance["dataset"] == "digits"
