"""Average and max pooling over (C, H, W). Average pooling divides by the full window (torch's default
count_include_pad=True), so its integer form is a fixed-weight synapse, or with `count_include_pad=False` by
the real inputs of each window; a window as large as the input is global average pooling. Max pooling takes
torch's `ceil_mode` (SqueezeNet, GoogLeNet): the last window may hang over the end, padding never wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError, UnsupportedError
from .base import Counts, GetTensor, Op, Shape, TorchCall, read_ints, window_real
from .conv2d import im2col, window_connections, window_shape
from .registry import register


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_call(call: TorchCall, names: tuple[str, ...]) -> dict[str, Any]:
    """Pooling arguments of a module (its attributes) or of a functional call (positions after the input)."""
    if call.module is not None:
        return {k: getattr(call.module, k, None) for k in names}
    return {k: call.arg(i + 1, k) for i, k in enumerate(names)}


def _window_args(a: dict[str, Any], where: str, what: str) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    if a.get("dilation") not in (None, 1, (1, 1), [1, 1]):
        raise UnsupportedError(f"{where}: {what} with dilation is not supported")
    if a["kernel_size"] is None:
        raise UnsupportedError(f"{where}: {what} without a kernel size")
    k = _pair(a["kernel_size"])
    stride = a.get("stride")
    return k, _pair(stride if stride not in (None, ()) else k), _pair(a.get("padding") or 0)


@dataclass(eq=False)
class _Pool(Op):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    fuses_relu: ClassVar[bool] = True

    @property
    def ceil(self) -> bool:
        return bool(getattr(self, "ceil_mode", False))

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        oh, ow = window_shape(shape, None, self.kernel, self.stride, self.padding, self.kind, self.ceil)
        return (int(shape[0]), oh, ow)

    def counts(self, *shapes: Shape) -> Counts:
        (shape,) = shapes
        out = self.out_shape(shape)
        n = int(window_connections(shape, self.kernel, self.stride, self.padding, self.ceil).sum()) * int(shape[0])
        return Counts(n, n, int(np.prod(out)))

    def effective(self, *masks: np.ndarray) -> np.ndarray:
        return im2col(masks[0], self.kernel, self.stride, self.padding, ceil=self.ceil).sum((4, 5), dtype=np.float32)

    def attrs(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def _load_window(cls, attrs: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
        return (read_ints(attrs.get("kernel"), 2, f"{cls.kind} kernel", low=1),
                read_ints(attrs.get("stride"), 2, f"{cls.kind} stride", low=1),
                read_ints(attrs.get("padding", [0, 0]), 2, f"{cls.kind} padding"))

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(*cls._load_window(attrs))


def _flag(attrs: dict[str, Any], key: str, default: bool) -> bool:
    v = attrs.get(key, default)
    if not isinstance(v, bool):
        raise ArtifactError(f"bad {key}: {v!r}"[:200])
    return v


@register
@dataclass(eq=False)
class AvgPool2d(_Pool):
    kind: ClassVar[str] = "avgpool2d"
    count_include_pad: ClassVar[bool] = True
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.AvgPool2d",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.avg_pool2d",)

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        a = _pool_call(call, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                              "divisor_override"))
        if a["divisor_override"] is not None:
            raise UnsupportedError(f"{call.where}: average pooling with divisor_override is not supported")
        if a["ceil_mode"]:
            raise UnsupportedError(f"{call.where}: average pooling with ceil_mode is not supported; pad the input "
                                   "or choose a kernel and stride that tile it")
        k, s, p = _window_args(a, call.where, "average pooling")
        if a["count_include_pad"] is False and p != (0, 0):  # without padding both divide alike
            return AvgPool2dExcludePad(k, s, p)
        return AvgPool2d(k, s, p)

    def divisor(self, shape: Shape) -> np.ndarray:
        """(OH, OW) float32 divisors: the full window."""
        _, oh, ow = self.out_shape(shape)
        return np.full((oh, ow), self.kernel[0] * self.kernel[1], np.float32)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        cols = im2col(x, self.kernel, self.stride, self.padding)
        return (cols.sum((4, 5), dtype=np.float32) / np.float32(self.kernel[0] * self.kernel[1])).astype(np.float32)


@register
@dataclass(eq=False)
class AvgPool2dExcludePad(AvgPool2d):
    """Average pooling that divides each window by its real (non-padding) inputs: torch's
    count_include_pad=False. A separate operation because its divisor changes with the position, which a
    fixed-weight synapse cannot express (backends that can, handle it; the others refuse it by name)."""

    kind: ClassVar[str] = "avgpool2d_exclude_pad"
    count_include_pad: ClassVar[bool] = False
    torch_modules: ClassVar[tuple[str, ...]] = ()
    torch_functions: ClassVar[tuple[str, ...]] = ()

    def divisor(self, shape: Shape) -> np.ndarray:
        """(OH, OW) float32 divisors: the real inputs of each window."""
        rh = window_real(shape[1], self.kernel[0], self.stride[0], self.padding[0])
        rw = window_real(shape[2], self.kernel[1], self.stride[1], self.padding[1])
        return np.outer(rh, rw).astype(np.float32)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        cols = im2col(x, self.kernel, self.stride, self.padding)
        return (cols.sum((4, 5), dtype=np.float32) / self.divisor(x.shape[1:])).astype(np.float32)


@register
@dataclass(eq=False)
class MaxPool2d(_Pool):
    ceil_mode: bool = False
    kind: ClassVar[str] = "maxpool2d"
    torch_modules: ClassVar[tuple[str, ...]] = ("torch.nn.MaxPool2d",)
    torch_functions: ClassVar[tuple[str, ...]] = ("torch.nn.functional.max_pool2d",)

    @classmethod
    def from_torch(cls, call: TorchCall) -> Op:
        a = _pool_call(call, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"))
        if a["return_indices"]:
            raise UnsupportedError(f"{call.where}: max pooling with return_indices is not supported")
        return cls(*_window_args(a, call.where, "max pooling"), bool(a["ceil_mode"]))

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        return np.ascontiguousarray(im2col(x, self.kernel, self.stride, self.padding, -np.inf, self.ceil).max((4, 5)))

    def attrs(self) -> dict[str, Any]:
        return super().attrs() | ({"ceil_mode": True} if self.ceil_mode else {})

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Op:
        return cls(*cls._load_window(attrs), _flag(attrs, "ceil_mode", False))
