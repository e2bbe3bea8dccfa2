"""The operations an artifact is made of: one module per family, one registry by name."""

from .affine import Affine, batchnorm_affine
from .base import MAX_ELEMENTS, Counts, Op, WeightOp, window_out
from .conv2d import Conv2d, im2col
from .dense import Dense
from .elementwise import Flatten, ReLU
from .merge import Add, Concat
from .pool import AvgPool2d, MaxPool2d
from .registry import OPS, handler, op_class, register

__all__ = ["Op", "WeightOp", "Counts", "OPS", "register", "op_class", "handler", "window_out", "im2col",
           "Dense", "Conv2d", "Affine", "AvgPool2d", "MaxPool2d", "Add", "Concat", "ReLU", "Flatten",
           "batchnorm_affine", "MAX_ELEMENTS"]
