"""Average and max pooling over (C, H, W). Average pooling divides by the full window (torch's default
count_include_pad=True), so its integer form is a fixed-weight synapse; a window as large as the input is
global average pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import Counts, GetTensor, Op, Shape, read_ints
from .conv2d import im2col, window_connections, window_shape
from .registry import register


@dataclass(eq=False)
class _Pool(Op):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        oh, ow = window_shape(shape, None, self.kernel, self.stride, self.padding, self.kind)
        return (int(shape[0]), oh, ow)

    def counts(self, *shapes: Shape) -> Counts:
        (shape,) = shapes
        out = self.out_shape(shape)
        n = int(window_connections(shape, self.kernel, self.stride, self.padding).sum()) * int(shape[0])
        return Counts(n, n, int(np.prod(out)))

    def attrs(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(read_ints(attrs.get("kernel"), 2, f"{cls.kind} kernel", low=1),
                   read_ints(attrs.get("stride"), 2, f"{cls.kind} stride", low=1),
                   read_ints(attrs.get("padding", [0, 0]), 2, f"{cls.kind} padding"))


@register
@dataclass(eq=False)
class AvgPool2d(_Pool):
    kind: ClassVar[str] = "avgpool2d"

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        cols = im2col(x, self.kernel, self.stride, self.padding)
        return (cols.sum((4, 5), dtype=np.float32) / np.float32(self.kernel[0] * self.kernel[1])).astype(np.float32)


@register
@dataclass(eq=False)
class MaxPool2d(_Pool):
    kind: ClassVar[str] = "maxpool2d"

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        return np.ascontiguousarray(im2col(x, self.kernel, self.stride, self.padding, -np.inf).max((4, 5)))
