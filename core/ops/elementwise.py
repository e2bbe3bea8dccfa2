"""Operations without parameters on one input: `relu` and `flatten` (C order, as torch flattens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Op, Shape
from .registry import register


@register
@dataclass(eq=False)
class ReLU(Op):
    kind: ClassVar[str] = "relu"

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        return tuple(shape)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return np.maximum(xs[0], 0)


@register
@dataclass(eq=False)
class Flatten(Op):
    kind: ClassVar[str] = "flatten"

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        return (int(np.prod(shape)),)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return xs[0].reshape(xs[0].shape[0], -1)
