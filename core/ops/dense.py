"""Fully connected: y = (x @ weight.T) * scale + bias, weight (out, in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError
from .base import Counts, GetTensor, Shape, WeightOp
from .registry import register


@register
@dataclass(eq=False)
class Dense(WeightOp):
    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    kind: ClassVar[str] = "dense"
    weight_ndim: ClassVar[int] = 2

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        if tuple(shape) != (self.in_features,):
            raise ArtifactError(f"dense expects input ({self.in_features},), gets {tuple(shape)}")
        return (self.out_features,)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        w = self.weight.astype(np.float32, copy=False)
        return (x @ w.T) * self.scale.astype(np.float32) + self.bias.astype(np.float32)

    def counts(self, *shapes: Shape) -> Counts:
        self.out_shape(*shapes)
        return Counts(int(self.weight.size), self.nonzero_weights(), self.out_features)

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Dense:
        return cls(*cls.read_weights(attrs, get, kind, bits))
