"""Operation counts against brute-force loops (independent of the mask-convolution trick ops.py uses)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import Conv2d, load_dataset
from ternkit.targets import count_ops, totals


def brute_conv(conv: Conv2d, x: np.ndarray) -> tuple[int, int, int]:
    """(connections, non-zero-weight connections, effective) for one sample x (C, H, W), by explicit loops."""
    c_out, c_in, kh, kw = conv.weight.shape
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    _, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    dense = nzw = eff = 0
    for o in range(c_out):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_in):
                    for a in range(kh):
                        for b in range(kw):
                            r, s = i * sh + a - ph, j * sw + b - pw
                            if 0 <= r < h and 0 <= s < w:
                                dense += 1
                                nzw += conv.weight[o, c, a, b] != 0
                                eff += conv.weight[o, c, a, b] != 0 and x[c, r, s] != 0
    return dense, int(nzw), int(eff)


def test_conv_counts_match_loops():
    model = random_cnn(seed=3)
    x = load_dataset("digits").x[:5]
    ops = count_ops(model, x)
    conv = model.layers[0]
    norm = model.input.normalise(x)
    counts = np.array([brute_conv(conv, s) for s in norm])
    assert ops[0].dense_macs == counts[0, 0] < 4 * 4 * 4 * 9  # padding excluded
    assert ops[0].nonzero_weight_macs == counts[0, 1]
    assert ops[0].effective_macs == pytest.approx(counts[:, 2].mean())


def test_dense_effective_matches_einsum():
    model = random_mlp((64, 32, 10), seed=1, zeros=0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 64)).astype(np.float32) * (rng.random((50, 64)) < 0.3)
    ops = count_ops(model, x)
    hidden = model.activations(x)[1]  # after ReLU
    weighted = [o for o in ops if o.weights]  # one row per node: dense, relu, dense
    assert [o.kind for o in ops] == ["dense", "relu", "dense"]
    for o, inp, layer in zip(weighted, [x, hidden], model.weight_layers, strict=True):
        eff = np.einsum("ni,oi->", (inp != 0).astype(float), (layer.weight != 0).astype(float)) / len(x)
        assert o.effective_macs == pytest.approx(eff)
        assert o.input_activation_sparsity == pytest.approx(float((inp == 0).mean()))
    t = totals(ops)
    assert t["activation_sparsity"] == pytest.approx(float((hidden == 0).mean()))
    assert t["effective_macs"] < t["nonzero_weight_macs"] < t["dense_macs"] == 64 * 32 + 32 * 10


def test_structural_counts_without_data_are_upper_bounds():
    model = random_mlp((8, 6, 3), seed=2)
    ops = count_ops(model)
    assert not any(o.measured for o in ops)
    assert all(o.effective_macs == o.nonzero_weight_macs for o in ops)


def test_wrong_sample_shape_is_an_option_error():
    from ternkit.core import OptionError

    with pytest.raises(OptionError, match="expects"):
        count_ops(random_mlp((8, 6, 3)), np.zeros((2, 5), np.float32))
