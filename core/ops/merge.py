"""Operations that join branches: residual `add` (equal shapes) and channel `concat`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import ArtifactError, UnsupportedError
from .base import Counts, Op, Shape, TorchCall
from .registry import register


@register
@dataclass(eq=False)
class Add(Op):
    kind: ClassVar[str] = "add"
    arity: ClassVar[int | None] = None
    fuses_relu: ClassVar[bool] = True
    torch_functions: ClassVar[tuple[str, ...]] = ("_operator.add", "_operator.iadd", "torch.add")
    torch_methods: ClassVar[tuple[str, ...]] = ("add", "__add__", "add_", "__iadd__")

    def out_shape(self, *shapes: Shape) -> Shape:
        if len(shapes) < 2 or any(tuple(s) != tuple(shapes[0]) for s in shapes):
            raise ArtifactError(f"add needs two or more inputs of one shape, gets {[tuple(s) for s in shapes]}")
        return tuple(shapes[0])

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        out = xs[0].astype(np.float32, copy=True)
        for x in xs[1:]:
            out += x
        return out

    def counts(self, *shapes: Shape) -> Counts:
        n = int(np.prod(self.out_shape(*shapes)))
        return Counts(n * len(shapes), n * len(shapes), n)

    def effective(self, *masks: np.ndarray) -> np.ndarray:
        return np.sum(masks, axis=0, dtype=np.float32)


@register
@dataclass(eq=False)
class Concat(Op):
    """Along the channel (first sample) axis."""

    kind: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None
    fuses_relu: ClassVar[bool] = True
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.cat", "torch.concat")

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        dim = call.arg(1, "dim", 0)
        if dim not in (1, -len(call.shapes[0]) if call.shapes else 1):
            raise UnsupportedError(f"{call.where}: cat along dim {dim} is not supported (only the channel dim 1)")
        return cls()

    def out_shape(self, *shapes: Shape) -> Shape:
        if len(shapes) < 2 or any(len(s) != len(shapes[0]) or tuple(s[1:]) != tuple(shapes[0][1:])
                                  for s in shapes):
            raise ArtifactError(f"concat needs inputs equal but in the channel axis, gets "
                                f"{[tuple(s) for s in shapes]}")
        return (sum(int(s[0]) for s in shapes),) + tuple(shapes[0][1:])

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return np.concatenate(xs, axis=1)

    def counts(self, *shapes: Shape) -> Counts:
        n = int(np.prod(self.out_shape(*shapes)))
        return Counts(n, n, n)

    def effective(self, *masks: np.ndarray) -> np.ndarray:
        return np.concatenate(masks, axis=1)
