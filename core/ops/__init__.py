"""The operations an artifact is made of: one module per family, one registry by name."""

from .affine import Affine, batchnorm_affine
from .arithmetic import Mul, ScaleShift
from .base import MAX_ELEMENTS, Counts, Op, TorchCall, WeightOp, window_out
from .conv2d import Conv2d, im2col
from .dense import Dense
from .elementwise import GELU, Clip, Flatten, Hardsigmoid, Hardswish, ReLU, Sigmoid, SiLU, Tanh, Unary
from .merge import Add, Concat
from .pool import AvgPool2d, AvgPool2dExcludePad, MaxPool2d
from .registry import OPS, handler, op_class, register
from .shape import Reshape, Slice, Transpose

__all__ = ["Op", "WeightOp", "Counts", "TorchCall", "OPS", "register", "op_class", "handler", "window_out", "im2col",
           "Dense", "Conv2d", "Affine", "AvgPool2d", "AvgPool2dExcludePad", "MaxPool2d", "Add", "Concat", "ReLU",
           "Flatten",
           "Unary", "Clip", "Hardswish", "Hardsigmoid", "Sigmoid", "SiLU", "Tanh", "GELU", "ScaleShift", "Mul",
           "Reshape", "Transpose", "Slice", "batchnorm_affine", "MAX_ELEMENTS"]
