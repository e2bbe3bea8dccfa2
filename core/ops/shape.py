"""Operations that move values without changing them, per sample (the batch axis is never touched):
`reshape` (C order: a view), `transpose` (an axis permutation: ShuffleNet's channel shuffle is reshape ->
transpose -> reshape) and `slice` (a contiguous range along one axis: `chunk` and `split`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError
from .base import MAX_ELEMENTS, GetTensor, Op, Shape, read_ints
from .registry import register

__all__ = ["Reshape", "Transpose", "Slice"]

MAX_RANK = 6


@register
@dataclass(eq=False)
class Reshape(Op):
    shape: tuple[int, ...]
    kind: ClassVar[str] = "reshape"
    in_place: ClassVar[bool] = True  # C order is kept: a view

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        if math.prod(shape) != math.prod(self.shape):
            raise ArtifactError(f"reshape of {tuple(shape)} to {self.shape} changes the element count")
        return tuple(self.shape)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return xs[0].reshape((len(xs[0]), *self.shape))

    def attrs(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def check(self, kind: str, levels: int) -> None:
        if not 1 <= len(self.shape) <= MAX_RANK or min(self.shape) < 1 or math.prod(self.shape) > MAX_ELEMENTS:
            raise ArtifactError(f"bad reshape target {list(self.shape)}")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(read_ints(attrs.get("shape"), None, "reshape shape", low=1, high=MAX_ELEMENTS + 1))


@register
@dataclass(eq=False)
class Transpose(Op):
    """Output axis i is input axis perm[i] (sample axes, 0-based)."""

    perm: tuple[int, ...]
    kind: ClassVar[str] = "transpose"

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        if len(shape) != len(self.perm):
            raise ArtifactError(f"transpose {list(self.perm)} of a rank-{len(shape)} input {tuple(shape)}")
        return tuple(int(shape[p]) for p in self.perm)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(xs[0].transpose((0, *(p + 1 for p in self.perm))))

    def attrs(self) -> dict[str, Any]:
        return {"perm": list(self.perm)}

    def check(self, kind: str, levels: int) -> None:
        if sorted(self.perm) != list(range(len(self.perm))) or not 1 <= len(self.perm) <= MAX_RANK:
            raise ArtifactError(f"transpose perm {list(self.perm)} is not a permutation")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(read_ints(attrs.get("perm"), None, "transpose perm", high=MAX_RANK))


@register
@dataclass(eq=False)
class Slice(Op):
    """Elements start..stop-1 along sample axis `axis` (0 = channels)."""

    axis: int
    start: int
    stop: int
    kind: ClassVar[str] = "slice"

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        if not 0 <= self.axis < len(shape) or not 0 <= self.start < self.stop <= shape[self.axis]:
            raise ArtifactError(f"slice {self.start}:{self.stop} of axis {self.axis} does not fit {tuple(shape)}")
        out = list(shape)
        out[self.axis] = self.stop - self.start
        return tuple(out)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        index = (slice(None),) * (self.axis + 1) + (slice(self.start, self.stop),)
        return np.ascontiguousarray(xs[0][index])

    def attrs(self) -> dict[str, Any]:
        return {"axis": self.axis, "start": self.start, "stop": self.stop}

    def check(self, kind: str, levels: int) -> None:
        if not (0 <= self.axis < MAX_RANK and 0 <= self.start < self.stop):
            raise ArtifactError(f"bad slice {self.start}:{self.stop} of axis {self.axis}")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        axis, start, stop = read_ints([attrs.get("axis"), attrs.get("start"), attrs.get("stop")], 3, "slice")
        return cls(axis, start, stop)
