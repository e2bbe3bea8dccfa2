"""Arithmetic of edge CNNs outside the weight operations: `scale_shift` (a tensor with constants:
`x * 0.5`, `x / 6`, `x + 3`, `3 - x`) and `mul` (two tensors, numpy broadcasting within a sample: the
squeeze-and-excitation gate (C, 1, 1) x (C, H, W))."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError, UnsupportedError
from .base import GetTensor, Op, Shape, TorchCall
from .elementwise import Unary
from .registry import register

__all__ = ["ScaleShift", "Mul"]

_MUL = ("_operator.mul", "_operator.imul", "torch.mul")
_ADD = ("_operator.add", "_operator.iadd", "torch.add")
_SUB = ("_operator.sub", "_operator.isub", "torch.sub")
_DIV = ("_operator.truediv", "_operator.itruediv", "torch.div")
_NUMBER = (int, float)


def _number(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool) and math.isfinite(v)


@register
@dataclass(eq=False)
class ScaleShift(Unary):
    """y = x * mul + add with constant numbers (float32 arithmetic)."""

    mul: float = 1.0
    add: float = 0.0
    kind: ClassVar[str] = "scale_shift"
    torch_functions: ClassVar[tuple[str, ...]] = _MUL + _ADD + _SUB + _DIV
    torch_methods: ClassVar[tuple[str, ...]] = ("mul", "add", "sub", "div", "mul_", "add_", "sub_", "div_",
                                                "__mul__", "__add__", "__sub__", "__truediv__", "__rmul__",
                                                "__radd__", "__rsub__")

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        name = call.name.rsplit(".", 1)[-1].strip("_").rstrip("_")
        consts = [a for a in call.args if a is not None] + [v for k, v in call.kwargs.items() if k == "other"]
        if len(consts) != 1 or not _number(consts[0]):
            raise UnsupportedError(f"{call.where}: {name} with {consts!r} is not supported (one tensor and one "
                                   "number, or two tensors)"[:300])
        c = float(consts[0])
        alpha = call.kwargs.get("alpha", 1)
        if call.kwargs.get("rounding_mode") is not None or not _number(alpha):
            raise UnsupportedError(f"{call.where}: {name} with rounding_mode or alpha is not supported")
        tensor_first = call.args[0] is None if call.args else True
        if name in ("mul", "imul", "rmul"):
            return cls(c, 0.0)
        if name in ("add", "iadd", "radd"):
            return cls(1.0, c * float(alpha))
        if name in ("sub", "isub"):
            return cls(1.0, -c * float(alpha)) if tensor_first else cls(-1.0, c)
        if name == "rsub":
            return cls(-1.0, c)
        if name in ("truediv", "itruediv", "div"):
            if not tensor_first or c == 0:
                raise UnsupportedError(f"{call.where}: dividing by a tensor (or by zero) is not supported")
            return cls(1.0 / c, 0.0)
        raise UnsupportedError(f"{call.where}: {name} with a constant is not supported")

    def fn(self, x: np.ndarray) -> np.ndarray:
        y = x * np.float32(self.mul) if self.mul != 1.0 else x
        return y + np.float32(self.add) if self.add != 0.0 else y

    def attrs(self) -> dict[str, Any]:
        return {"mul": self.mul, "add": self.add}

    def check(self, kind: str, levels: int) -> None:
        if not (_number(self.mul) and _number(self.add)):
            raise ArtifactError(f"scale_shift needs finite numbers, got {self.mul!r}, {self.add!r}"[:200])

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        mul, add = attrs.get("mul", 1.0), attrs.get("add", 0.0)
        if not (_number(mul) and _number(add)):
            raise ArtifactError(f"bad scale_shift: {mul!r}, {add!r}"[:200])
        return cls(float(mul), float(add))


@register
@dataclass(eq=False)
class Mul(Op):
    """Elementwise product of two tensors; each sample's shapes broadcast as numpy's (trailing axes)."""

    kind: ClassVar[str] = "mul"
    arity: ClassVar[int | None] = 2
    fuses_relu: ClassVar[bool] = True
    torch_functions: ClassVar[tuple[str, ...]] = _MUL
    torch_methods: ClassVar[tuple[str, ...]] = ("mul", "mul_", "__mul__", "__rmul__")

    def out_shape(self, *shapes: Shape) -> Shape:
        if len(shapes) != 2:
            raise ArtifactError(f"mul needs two inputs, gets {len(shapes)}")
        a, b = (tuple(s) for s in shapes)
        try:
            out = np.broadcast_shapes(a, b)
        except ValueError:
            raise ArtifactError(f"mul inputs {a} and {b} do not broadcast") from None
        if len(a) != len(b) or out not in (a, b):
            raise ArtifactError(f"mul inputs {a} and {b}: one must broadcast to the other with equal rank")
        return tuple(int(d) for d in out)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return (xs[0] * xs[1]).astype(np.float32, copy=False)
