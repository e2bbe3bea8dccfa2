"""Operations without parameters on one input, applied element by element: `relu`, the clipped and smooth
activations of edge CNNs (`clip` for ReLU6 / Hardtanh / clamp, `hardswish`, `hardsigmoid`, `sigmoid`, `silu`,
`tanh`, `gelu`), and `flatten` (C order, as torch flattens).

Each activation is a function of one value, so an integer backend can compute it from a table of the 256 int8
inputs built from this `forward` (the C export does). Formulas follow torch's CPU kernels, so the reference
agrees with torch within float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError, UnsupportedError
from .base import GetTensor, Op, Shape, TorchCall
from .registry import register

__all__ = ["ReLU", "Flatten", "Unary", "Clip", "Hardswish", "Hardsigmoid", "Sigmoid", "SiLU", "Tanh", "GELU"]


class Unary(Op):
    """An elementwise function of one value: shape-preserving, in place, and (for integer backends) a table."""

    in_place: ClassVar[bool] = True
    fuses_relu: ClassVar[bool] = True  # max(f(x), 0) is another function of x

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        return tuple(shape)

    def fn(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(xs[0].astype(np.float32, copy=False)), np.float32)


@register
@dataclass(eq=False)
class ReLU(Unary):
    kind: ClassVar[str] = "relu"
    fuses_relu: ClassVar[bool] = False
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.ReLU",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.relu", "torch.relu", "torch.relu_",
                                                  "torch.nn.functional.relu_")
    torch_methods: ClassVar[tuple[str, ...]] = ("relu", "relu_")

    def fn(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)


def _bound(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ArtifactError(f"bad clip {what}: {v!r}"[:200])
    return float(v)


@register
@dataclass(eq=False)
class Clip(Unary):
    """min(max(x, low), high); either bound may be absent. ReLU6 is clip(0, 6), Hardtanh clip(-1, 1)."""

    low: float | None = None
    high: float | None = None
    kind: ClassVar[str] = "clip"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.ReLU6", "torch.nn.Hardtanh")
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.relu6", "torch.nn.functional.hardtanh",
                                                  "torch.clamp", "torch.clip", "torch.nn.functional.hardtanh_")
    torch_methods: ClassVar[tuple[str, ...]] = ("clamp", "clip", "clamp_", "clip_")

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        m = call.module
        if m is not None:
            return cls(float(m.min_val), float(m.max_val))  # ReLU6 is a Hardtanh(0, 6)
        name = call.name.rsplit(".", 1)[-1]
        if name == "relu6":
            return cls(0.0, 6.0)
        if name in ("hardtanh", "hardtanh_"):
            return cls(float(call.arg(1, "min_val", -1.0)), float(call.arg(2, "max_val", 1.0)))
        low, high = call.arg(1, "min"), call.arg(2, "max")
        if not all(v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise UnsupportedError(f"{call.where}: clamp with tensor bounds is not supported (use numbers)")
        if low is None and high is None:
            raise UnsupportedError(f"{call.where}: clamp without bounds")
        return cls(None if low is None else float(low), None if high is None else float(high))

    def fn(self, x: np.ndarray) -> np.ndarray:
        if self.low is not None:
            x = np.maximum(x, np.float32(self.low))
        if self.high is not None:
            x = np.minimum(x, np.float32(self.high))
        return x

    def attrs(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    def check(self, kind: str, levels: int) -> None:
        _bound(self.low, "low"), _bound(self.high, "high")
        if self.low is None and self.high is None or (self.low is not None and self.high is not None
                                                      and self.low > self.high):
            raise ArtifactError(f"clip bounds {self.low}, {self.high} are not an interval")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(_bound(attrs.get("low"), "low"), _bound(attrs.get("high"), "high"))


@register
@dataclass(eq=False)
class Hardswish(Unary):
    kind: ClassVar[str] = "hardswish"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Hardswish",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.hardswish",)

    def fn(self, x: np.ndarray) -> np.ndarray:
        return x * np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6)) / np.float32(6)


@register
@dataclass(eq=False)
class Hardsigmoid(Unary):
    kind: ClassVar[str] = "hardsigmoid"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Hardsigmoid",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.hardsigmoid",)

    def fn(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6)) / np.float32(6)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


@register
@dataclass(eq=False)
class Sigmoid(Unary):
    kind: ClassVar[str] = "sigmoid"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Sigmoid",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.sigmoid", "torch.nn.functional.sigmoid")
    torch_methods: ClassVar[tuple[str, ...]] = ("sigmoid", "sigmoid_")

    def fn(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(x)


@register
@dataclass(eq=False)
class SiLU(Unary):
    kind: ClassVar[str] = "silu"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.SiLU",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.silu",)

    def fn(self, x: np.ndarray) -> np.ndarray:
        return x * _sigmoid(x)


@register
@dataclass(eq=False)
class Tanh(Unary):
    kind: ClassVar[str] = "tanh"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Tanh",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.tanh", "torch.nn.functional.tanh")
    torch_methods: ClassVar[tuple[str, ...]] = ("tanh", "tanh_")

    def fn(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 to ~1e-15 (numpy has none): math.erf per element; activations are small arrays."""
    return np.frompyfunc(math.erf, 1, 1)(x.astype(np.float64)).astype(np.float64)


@register
@dataclass(eq=False)
class GELU(Unary):
    """0.5 x (1 + erf(x / sqrt 2)), or torch's tanh approximation (`approximate="tanh"`)."""

    approximate: str = "none"
    kind: ClassVar[str] = "gelu"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.GELU",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.gelu",)

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        mode = call.module.approximate if call.module is not None else call.kwargs.get("approximate", "none")
        return cls(str(mode))

    def fn(self, x: np.ndarray) -> np.ndarray:
        x64 = x.astype(np.float64)
        if self.approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)
            return (0.5 * x64 * (1 + np.tanh(inner))).astype(np.float32)
        return (0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))).astype(np.float32)

    def attrs(self) -> dict[str, Any]:
        return {"approximate": self.approximate}

    def check(self, kind: str, levels: int) -> None:
        if self.approximate not in ("none", "tanh"):
            raise ArtifactError(f"gelu approximate must be 'none' or 'tanh', not {self.approximate!r}"[:200])

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(str(attrs.get("approximate", "none"))[:16])


@register
@dataclass(eq=False)
class Flatten(Op):
    kind: ClassVar[str] = "flatten"
    in_place: ClassVar[bool] = True  # a view
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.Flatten",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.flatten",)
    torch_methods: ClassVar[tuple[str, ...]] = ("flatten",)

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        if call.module is not None:
            start, end = call.module.start_dim, call.module.end_dim
        else:
            start, end = call.arg(1, "start_dim", 0), call.arg(2, "end_dim", -1)
        ndim = len(call.shapes[0]) + 1 if call.shapes else 0
        if start != 1 or end not in (-1, ndim - 1):
            raise UnsupportedError(f"{call.where}: flatten(start_dim={start}, end_dim={end}) is not supported; use "
                                   "flatten(x, 1)")
        return cls()

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        return (int(np.prod(shape)),)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return xs[0].reshape(xs[0].shape[0], -1)
