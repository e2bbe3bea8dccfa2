"""Per-channel affine y = x * scale[c] + bias[c]: what a BatchNorm becomes when no weight operation directly
precedes it (otherwise it is folded into that operation's scale and bias, see `WeightOp.with_affine`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError
from .base import Counts, GetTensor, Op, Shape
from .registry import register


def batchnorm_affine(mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                     eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in inference as gain and shift per channel (float64, rounded once by the caller)."""
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    gamma = np.ones_like(mean) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros_like(mean) if beta is None else np.asarray(beta, np.float64)
    gain = gamma / np.sqrt(var + eps)
    return gain, beta - mean * gain


@register
@dataclass(eq=False)
class Affine(Op):
    scale: np.ndarray
    bias: np.ndarray
    kind: ClassVar[str] = "affine"
    in_place: ClassVar[bool] = True
    fuses_relu: ClassVar[bool] = True

    def _view(self, arr: np.ndarray, ndim: int) -> np.ndarray:
        return arr.astype(np.float32).reshape((1, -1) + (1,) * (ndim - 2))

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        if not shape or shape[0] != self.scale.size:
            raise ArtifactError(f"affine over {self.scale.size} channels gets input {tuple(shape)}")
        return tuple(shape)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        return x * self._view(self.scale, x.ndim) + self._view(self.bias, x.ndim)

    def counts(self, *shapes: Shape) -> Counts:
        n = int(np.prod(self.out_shape(*shapes)))
        return Counts(0, 0, n)

    def attrs(self) -> dict[str, Any]:
        return {"channels": int(self.scale.size)}

    def arrays(self, kind: str, bits: int) -> dict[str, np.ndarray]:
        return {"scale": np.ascontiguousarray(self.scale, np.float32),
                "bias": np.ascontiguousarray(self.bias, np.float32)}

    def check(self, kind: str, levels: int) -> None:
        if self.scale.ndim != 1 or self.scale.shape != self.bias.shape or self.scale.size == 0:
            raise ArtifactError(f"affine scale {list(self.scale.shape)} and bias {list(self.bias.shape)} "
                                "must be equal non-empty vectors")
        if not (np.all(np.isfinite(self.scale)) and np.all(np.isfinite(self.bias))):
            raise ArtifactError("affine scale or bias holds NaN or inf")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Affine:
        return cls(get("scale", np.float32), get("bias", np.float32))
