"""2-d cross-correlation with torch semantics: weight (C_out, C_in / groups, kH, kW), strides, zero padding,
groups (depthwise when groups = C_in = C_out). No dilation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ArtifactError
from .base import Counts, GetTensor, Shape, WeightOp, read_ints, window_out, window_pad_end, window_taps
from .registry import register


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           pad_value: float = 0.0, ceil: bool = False) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, kH, kW) windows (a view where possible); shared by conv and pooling.
    `ceil`: torch's ceil_mode (the last window may reach into `pad_value` past the end)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = window_out(x.shape[2], kh, sh, ph, ceil), window_out(x.shape[3], kw, sw, pw, ceil)
    eh, ew = window_pad_end(x.shape[2], kh, sh, ph, ceil), window_pad_end(x.shape[3], kw, sw, pw, ceil)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, eh), (pw, ew)), constant_values=pad_value) if ph or pw or eh or ew else x
    v = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return v[:, :, ::sh, ::sw][:, :, :oh, :ow]


def window_shape(in_shape: Shape, channels: int | None, kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], what: str, ceil: bool = False) -> tuple[int, int]:
    """Output (H, W) of a window operation on (C, H, W), or ArtifactError if it does not fit."""
    if len(in_shape) != 3 or (channels is not None and in_shape[0] != channels):
        raise ArtifactError(f"{what} expects input ({channels if channels is not None else 'C'}, H, W), "
                            f"gets {tuple(in_shape)}")
    if min(stride) < 1 or min(kernel) < 1 or min(padding) < 0:
        raise ArtifactError(f"{what}: kernel and stride must be >= 1 and padding >= 0")
    if padding[0] * 2 > kernel[0] * 2 + in_shape[1] or padding[1] * 2 > kernel[1] * 2 + in_shape[2]:
        raise ArtifactError(f"{what}: padding {list(padding)} is larger than the input and kernel")
    oh = window_out(in_shape[1], kernel[0], stride[0], padding[0], ceil)
    ow = window_out(in_shape[2], kernel[1], stride[1], padding[1], ceil)
    if oh < 1 or ow < 1:
        raise ArtifactError(f"{what}: kernel {list(kernel)} does not fit input {tuple(in_shape)}")
    return oh, ow


def window_connections(in_shape: Shape, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int], ceil: bool = False) -> np.ndarray:
    """(kH, kW): for each kernel offset, the output positions that read a real input through it."""
    th = window_taps(in_shape[1], kernel[0], stride[0], padding[0], ceil)
    tw = window_taps(in_shape[2], kernel[1], stride[1], padding[1], ceil)
    return np.outer(th, tw)


def correlate(a: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
              groups: int = 1) -> np.ndarray:
    """Cross-correlation (torch semantics) in the arrays' own dtype -- exact for integer arrays: a (N, C, H, W),
    w (O, C / groups, kH, kW) -> (N, O, OH, OW)."""
    n = len(a)
    o, cg, kh, kw = w.shape
    cols = im2col(a, (kh, kw), tuple(stride), tuple(padding))  # (n, c, oh, ow, kh, kw)
    oh, ow = cols.shape[2], cols.shape[3]
    cols = cols.reshape(n, groups, cg, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6).reshape(
        n, groups, oh * ow, cg * kh * kw)
    y = cols @ w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)  # (n, g, oh*ow, o_g)
    return np.ascontiguousarray(y.transpose(0, 1, 3, 2).reshape(n, o, oh, ow))


def expand_groups(q: np.ndarray, groups: int) -> np.ndarray:
    """A grouped kernel (O, C/g, kh, kw) as the equal block-diagonal full kernel (O, C, kh, kw): for consumers that
    take groups only in some forms (Lava's 8-bit group count, nir 1.0.8's typing, hls4ml's depthwise-only)."""
    if groups == 1:
        return q
    o, cg = q.shape[:2]
    full = np.zeros((o, cg * groups) + q.shape[2:], q.dtype)
    per = o // groups
    for k in range(groups):
        full[k * per:(k + 1) * per, k * cg:(k + 1) * cg] = q[k * per:(k + 1) * per]
    return full


def conv_fan_out(w: np.ndarray, in_chw: tuple[int, ...], stride, padding) -> np.ndarray:
    """Non-zero connections leaving each input element of a conv, shape (C, H, W); grouped and depthwise
    convolutions (C = groups * w.shape[1]) reach only the output channels of their group."""
    c, h, wd = in_chw
    cout, cin_g, kh, kw = w.shape
    groups = c // cin_g
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = window_out(h, kh, sh, ph), window_out(wd, kw, sw, pw)
    # (C, kh, kw): output channels of the group reached through each kernel tap
    nz = (np.asarray(w) != 0).reshape(groups, cout // groups, cin_g, kh, kw).sum(1).reshape(c, kh, kw)
    fan = np.zeros((c, h + 2 * ph + sh * oh, wd + 2 * pw + sw * ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            fan[:, i:i + sh * oh:sh, j:j + sw * ow:sw] += nz[:, i, j][:, None, None]
    return fan[:, ph:ph + h, pw:pw + wd]


@register
@dataclass(eq=False)
class Conv2d(WeightOp):
    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    kind: ClassVar[str] = "conv2d"
    weight_ndim: ClassVar[int] = 4

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    def out_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        oh, ow = window_shape(shape, self.in_channels, self.kernel, self.stride, self.padding, "conv2d")
        return (self.out_channels, oh, ow)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        (x,) = xs
        n, g = x.shape[0], self.groups
        _, oh, ow = self.out_shape(x.shape[1:])
        kh, kw = self.kernel
        cols = im2col(x, self.kernel, self.stride, self.padding)  # (n, c, oh, ow, kh, kw)
        cin_g, cout_g = self.in_channels // g, self.out_channels // g
        cols = cols.reshape(n, g, cin_g, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6).reshape(
            n, g, oh * ow, cin_g * kh * kw)
        wm = self.weight.astype(np.float32, copy=False).reshape(g, cout_g, cin_g * kh * kw)
        y = cols @ wm.transpose(0, 2, 1)  # (n, g, oh*ow, cout_g)
        y = y.transpose(0, 1, 3, 2).reshape(n, self.out_channels, oh, ow)
        return np.ascontiguousarray(y * self.scale.astype(np.float32).reshape(-1, 1, 1)
                                    + self.bias.astype(np.float32).reshape(-1, 1, 1))

    def counts(self, *shapes: Shape) -> Counts:
        (shape,) = shapes
        out = self.out_shape(shape)
        taps = window_connections(shape, self.kernel, self.stride, self.padding)
        per_tap = self.out_channels * (self.in_channels // self.groups)
        nonzero = int(((self.weight != 0).sum((0, 1)) * taps).sum())
        return Counts(int(taps.sum()) * per_tap, nonzero, int(np.prod(out)))

    def attrs(self) -> dict[str, Any]:
        return {"shape": list(self.weight.shape), "stride": list(self.stride), "padding": list(self.padding),
                "groups": self.groups}

    def check(self, kind: str, levels: int) -> None:
        super().check(kind, levels)
        if min(self.stride) < 1 or min(self.padding) < 0:
            raise ArtifactError(f"conv2d stride {list(self.stride)} must be >= 1, padding >= 0")
        if self.groups < 1 or self.out_channels % self.groups:
            raise ArtifactError(f"conv2d groups={self.groups} does not divide {self.out_channels} outputs")

    @classmethod
    def load(cls, attrs: dict[str, Any], get: GetTensor, kind: str, bits: int) -> Conv2d:
        w, s, b = cls.read_weights(attrs, get, kind, bits)
        (groups,) = read_ints([attrs.get("groups", 1)], 1, "conv2d groups", low=1)
        return cls(w, s, b, read_ints(attrs.get("stride"), 2, "conv2d stride", low=1),
                   read_ints(attrs.get("padding"), 2, "conv2d padding"), groups)
