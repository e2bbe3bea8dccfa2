"""One small model per registered operation (and per interesting variant), shared by the conformance tests of
core and of every backend: a backend test parametrised over `MODELS` covers every operation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ternkit.core import (
    INPUT,
    Add,
    Affine,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    Flatten,
    InputSpec,
    MaxPool2d,
    Node,
    ReLU,
    TernaryModel,
)
from ternkit.core.ops import (
    GELU,
    AvgPool2dExcludePad,
    Clip,
    Hardsigmoid,
    Hardswish,
    Mul,
    Reshape,
    ScaleShift,
    Sigmoid,
    SiLU,
    Slice,
    Tanh,
    Transpose,
)


def _trits(rng, shape, zeros=1 / 3):
    return rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[(1 - zeros) / 2, zeros, (1 - zeros) / 2])


def conv(rng, cout, cin, k=(3, 3), stride=(1, 1), padding=(1, 1), groups=1) -> Conv2d:
    return Conv2d(_trits(rng, (cout, cin // groups, *k)), rng.uniform(0.1, 0.5, cout).astype(np.float32),
                  rng.normal(0, 0.1, cout).astype(np.float32), stride, padding, groups)


def dense(rng, out, inp) -> Dense:
    return Dense(_trits(rng, (out, inp)), rng.uniform(0.05, 0.3, out).astype(np.float32),
                 rng.normal(0, 0.1, out).astype(np.float32))


def _image_spec(c, h, w):
    return InputSpec((c, h, w), np.full((c, 1, 1), 0.5, np.float32), np.full((c, 1, 1), 0.25, np.float32))


def _head(rng, nodes, prev, feat, classes=3):
    nodes += [Node("flat", Flatten(), (prev,)), Node("fc", dense(rng, classes, feat), ("flat",))]
    return nodes


def _model(nodes, spec, classes=3) -> TernaryModel:
    m = TernaryModel(nodes, spec, [f"k{i}" for i in range(classes)])
    m.validate()
    return m


def m_dense(rng):
    spec = InputSpec((12,), np.zeros(12, np.float32), np.ones(12, np.float32))
    return _model([dense(rng, 8, 12), ReLU(), dense(rng, 3, 8)], spec)


def m_conv2d(rng):
    nodes = [Node("c", conv(rng, 4, 2, stride=(2, 2)), (INPUT,)), Node("r", ReLU(), ("c",))]
    return _model(_head(rng, nodes, "r", 4 * 4 * 4), _image_spec(2, 7, 7))


def m_conv2d_rect(rng):
    nodes = [Node("c", conv(rng, 3, 2, k=(3, 1), stride=(2, 1), padding=(1, 0)), (INPUT,)),
             Node("r", ReLU(), ("c",))]
    return _model(_head(rng, nodes, "r", 3 * 4 * 6), _image_spec(2, 7, 6))


def m_depthwise(rng):
    nodes = [Node("dw", conv(rng, 4, 4, groups=4), (INPUT,)), Node("r1", ReLU(), ("dw",)),
             Node("pw", conv(rng, 6, 4, k=(1, 1), padding=(0, 0)), ("r1",)), Node("r2", ReLU(), ("pw",))]
    return _model(_head(rng, nodes, "r2", 6 * 6 * 6), _image_spec(4, 6, 6))


def m_grouped(rng):
    nodes = [Node("g", conv(rng, 4, 4, groups=2, stride=(2, 2)), (INPUT,)), Node("r", ReLU(), ("g",))]
    return _model(_head(rng, nodes, "r", 4 * 3 * 3), _image_spec(4, 6, 6))


def m_affine(rng):
    aff = Affine(rng.uniform(0.5, 1.5, 3).astype(np.float32), rng.normal(0, 0.2, 3).astype(np.float32))
    nodes = [Node("c", conv(rng, 3, 1), (INPUT,)), Node("r", ReLU(), ("c",)), Node("bn", aff, ("r",))]
    return _model(_head(rng, nodes, "bn", 3 * 6 * 6), _image_spec(1, 6, 6))


def m_avgpool(rng):
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("p", AvgPool2d((2, 2), (2, 2)), ("r",))]
    return _model(_head(rng, nodes, "p", 4 * 3 * 3), _image_spec(1, 6, 6))


def m_global_avgpool(rng):
    nodes = [Node("c", conv(rng, 5, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("p", AvgPool2d((6, 6), (6, 6)), ("r",))]
    return _model(_head(rng, nodes, "p", 5), _image_spec(1, 6, 6))


def m_maxpool(rng):
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("p", MaxPool2d((2, 2), (2, 2)), ("r",))]
    return _model(_head(rng, nodes, "p", 4 * 3 * 3), _image_spec(1, 6, 6))


def m_add(rng):
    """A residual block: relu(x + conv(relu(conv(x))))."""
    nodes = [Node("stem", conv(rng, 4, 1), (INPUT,)), Node("r0", ReLU(), ("stem",)),
             Node("c1", conv(rng, 4, 4), ("r0",)), Node("r1", ReLU(), ("c1",)),
             Node("c2", conv(rng, 4, 4), ("r1",)), Node("sum", Add(), ("r0", "c2")), Node("r2", ReLU(), ("sum",))]
    return _model(_head(rng, nodes, "r2", 4 * 6 * 6), _image_spec(1, 6, 6))


def m_concat(rng):
    nodes = [Node("a", conv(rng, 2, 1), (INPUT,)), Node("b", conv(rng, 3, 1, k=(1, 1), padding=(0, 0)), (INPUT,)),
             Node("cat", Concat(), ("a", "b")), Node("r", ReLU(), ("cat",))]
    return _model(_head(rng, nodes, "r", 5 * 5 * 5), _image_spec(1, 5, 5))


def _unary(op):
    """conv -> the elementwise operation -> head: conv outputs span about +-3, both sides of every bend."""
    def make(rng):
        nodes = [Node("c", conv(rng, 3, 1), (INPUT,)), Node("f", op, ("c",))]
        return _model(_head(rng, nodes, "f", 3 * 5 * 5), _image_spec(1, 5, 5))
    return make


def m_squeeze_excite(rng):
    """x * hardsigmoid(conv1x1(relu(conv1x1(mean(x))))): the squeeze-excitation gate, (C, 1, 1) x (C, H, W)."""
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("sq", AvgPool2d((5, 5), (5, 5)), ("r",)),
             Node("fc1", conv(rng, 2, 4, k=(1, 1), padding=(0, 0)), ("sq",)), Node("r1", ReLU(), ("fc1",)),
             Node("fc2", conv(rng, 4, 2, k=(1, 1), padding=(0, 0)), ("r1",)), Node("g", Hardsigmoid(), ("fc2",)),
             Node("se", Mul(), ("r", "g"))]
    return _model(_head(rng, nodes, "se", 4 * 5 * 5), _image_spec(1, 5, 5))


def m_shuffle(rng):
    """ShuffleNet's unit: chunk in two, one half through a conv, concat, channel shuffle (reshape ->
    transpose -> reshape)."""
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("a", Slice(0, 0, 2), ("c",)), Node("b", Slice(0, 2, 4), ("c",)),
             Node("bc", conv(rng, 2, 2), ("b",)), Node("br", ReLU(), ("bc",)), Node("cat", Concat(), ("a", "br")),
             Node("v", Reshape((2, 2, 5, 5)), ("cat",)), Node("t", Transpose((1, 0, 2, 3)), ("v",)),
             Node("s", Reshape((4, 5, 5)), ("t",))]
    return _model(_head(rng, nodes, "s", 4 * 5 * 5), _image_spec(1, 5, 5))


def m_maxpool_ceil(rng):
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("p", MaxPool2d((3, 3), (2, 2), (0, 0), ceil_mode=True), ("r",))]
    return _model(_head(rng, nodes, "p", 4 * 3 * 3), _image_spec(1, 6, 6))


def m_maxpool_ceil_pad(rng):
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("p", MaxPool2d((3, 3), (2, 2), (1, 1), ceil_mode=True), ("c",))]
    return _model(_head(rng, nodes, "p", 4 * 4 * 4), _image_spec(1, 6, 6))


def m_avgpool_exclude_pad(rng):
    nodes = [Node("c", conv(rng, 4, 1), (INPUT,)), Node("r", ReLU(), ("c",)),
             Node("p", AvgPool2dExcludePad((3, 3), (1, 1), (1, 1)), ("r",))]
    return _model(_head(rng, nodes, "p", 4 * 6 * 6), _image_spec(1, 6, 6))


MODELS: dict[str, Callable] = {
    "dense": m_dense, "conv2d": m_conv2d, "conv2d-rect": m_conv2d_rect, "conv2d-depthwise": m_depthwise,
    "conv2d-grouped": m_grouped, "affine": m_affine, "avgpool2d": m_avgpool, "avgpool2d-global": m_global_avgpool,
    "maxpool2d": m_maxpool, "add": m_add, "concat": m_concat,
    "clip-relu6": _unary(Clip(0.0, 6.0)), "clip-hardtanh": _unary(Clip(-1.0, 1.0)), "clip-min": _unary(Clip(0.5, None)),
    "hardswish": _unary(Hardswish()), "hardsigmoid": _unary(Hardsigmoid()), "sigmoid": _unary(Sigmoid()),
    "silu": _unary(SiLU()), "tanh": _unary(Tanh()), "gelu": _unary(GELU()), "gelu-tanh": _unary(GELU("tanh")),
    "scale-shift": _unary(ScaleShift(1 / 6, 0.5)), "mul-se": m_squeeze_excite, "shuffle-unit": m_shuffle,
    "maxpool2d-ceil": m_maxpool_ceil, "maxpool2d-ceil-pad": m_maxpool_ceil_pad,
    "avgpool2d-exclude-pad": m_avgpool_exclude_pad,
}


def example_model(name: str, seed: int = 0) -> TernaryModel:
    return MODELS[name](np.random.default_rng(seed))


def example_input(model: TernaryModel, n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *model.input.shape)).astype(np.float32)
