"""Model specs -> a list of layer plans.

- `mlp:256`, `mlp:512x256`, `mlp:256bnx128` -- dense hidden layers (`bn`: BatchNorm before the ReLU).
- `cnn:16c5s2-32c5s2-100` -- tokens joined by `-`:
  `<ch>c<k>[x<k2>][s<stride>][p<pad>][g<groups>][bn]` a convolution (+ BatchNorm) + ReLU (padding defaults to
  k // 2; `x<k2>` makes the kernel k by k2); `dw<k>[s<stride>][bn]` a depthwise convolution (groups = channels);
  `ap<k>` / `mp<k>` average / max pooling (window k, stride k); `gap` global average pooling; a plain integer
  a dense hidden layer. A convolution's activation is ReLU, or with a suffix `r6` ReLU6 / `hs` Hardswish
  (`16c3s2bnhs`, `dw3bnr6`); `se` a squeeze-and-excitation block on the current channels (1x1 convs to a
  quarter and back, ReLU, a Hardsigmoid gate, as MobileNetV3's).
- `mbv2:16-24x2-32x3` -- a MobileNetV2: a 3x3 stem of the first width (BN, ReLU6), then one stage of inverted
  residuals per width (`24x2`: two blocks; 1x1 expansion by 6 -- 1 in the first stage --, 3x3 depthwise,
  1x1 linear projection, all with BN and ReLU6, the input added where the shape allows), stages after the first
  halve the resolution; a 1x1 conv to four times the last width, global average pooling, the output layer.
- `resnet:16-32-64` -- a small residual CNN: a 3x3 stem of the first width, then one stage per width (`16x2`:
  two blocks), each block conv-BN-ReLU-conv-BN plus the shortcut (a strided 1x1 conv + BN where the shape
  changes), then ReLU; stages after the first halve the resolution; global average pooling, the output layer.
The output layer (one unit per class) is appended by the builder. Plain strided convolutions are what maps
most directly onto neuromorphic cores; pooling and residuals are there for the models edge users deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ternkit.core.errors import OptionError

__all__ = ["ConvPlan", "DensePlan", "PoolPlan", "ResNetPlan", "SEPlan", "MobileNetPlan", "parse_model_spec",
           "DEFAULT_CNN", "SPEC_HELP"]

DEFAULT_CNN = "16c5s2-32c5s2-100"
DEFAULT_RESNET = "16-32-64"
DEFAULT_MBV2 = "16-24x2-32x3"
_CONV = re.compile(r"^(\d+)c(\d+)(?:x(\d+))?(?:s(\d+))?(?:p(\d+))?(?:g(\d+))?(bn)?(r6|hs)?$")
_DW = re.compile(r"^dw(\d+)(?:s(\d+))?(bn)?(r6|hs)?$")
_ACTIVATION = {None: "relu", "r6": "relu6", "hs": "hardswish"}
_POOL = re.compile(r"^(ap|mp)(\d+)$")
_DENSE = re.compile(r"^(\d+)(bn)?$")
_STAGE = re.compile(r"^(\d+)(?:x(\d+))?$")
MAX_WIDTH = 65536
SPEC_HELP = ("mlp:W[xW...] (W[bn]: a dense layer, bn = BatchNorm); cnn:TOKENS joined by '-': "
             "<ch>c<k>[x<k2>][s<stride>][p<pad>][g<groups>][bn][r6|hs] conv, dw<k>[s<stride>][bn][r6|hs] depthwise "
             "conv (activation ReLU, r6 ReLU6, hs Hardswish), se squeeze-excitation, "
             "ap<k>/mp<k> average/max pooling, gap global average pooling, <units>[bn] dense; "
             f"resnet:W[xBLOCKS]-W... a small residual CNN (default {DEFAULT_RESNET}); mbv2:W[xBLOCKS]-W... a "
             f"MobileNetV2 of inverted residuals with ReLU6 (default {DEFAULT_MBV2}); or FILE.py:FUNCTION")


@dataclass(frozen=True)
class ConvPlan:
    channels: int  # 0 for a depthwise conv: as many as its input
    kernel: int | tuple[int, int]
    stride: int
    padding: int | tuple[int, int]
    groups: int = 1
    batchnorm: bool = False
    depthwise: bool = False
    activation: str = "relu"  # relu | relu6 | hardswish


@dataclass(frozen=True)
class DensePlan:
    units: int
    batchnorm: bool = False


@dataclass(frozen=True)
class PoolPlan:
    kind: str  # avg | max | global
    kernel: int = 0


@dataclass(frozen=True)
class ResNetPlan:
    widths: tuple[int, ...]
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class MobileNetPlan:
    widths: tuple[int, ...]
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class SEPlan:
    """Squeeze-and-excitation on the current channels (reduced to a quarter)."""


def _positive(n: int, what: str, spec: str, high: int = MAX_WIDTH) -> int:
    if n < 1 or n > high:
        raise OptionError(f"model spec {spec!r}: {what} must be in 1..{high}, got {n}")
    return n


def _stages(body: str, spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    widths, blocks = [], []
    for tok in body.split("-"):
        m = _STAGE.match(tok)
        if not m:
            raise OptionError(f"model spec {spec!r}: cannot read stage {tok!r} (use e.g. resnet:16-32 or 16x2-32x2)")
        widths.append(_positive(int(m[1]), "width", spec, 4096))
        blocks.append(_positive(int(m[2] or 1), "blocks per stage", spec, 16))
    return tuple(widths), tuple(blocks)


Plan = ConvPlan | DensePlan | PoolPlan | ResNetPlan | MobileNetPlan | SEPlan


def parse_model_spec(spec: str) -> list[Plan]:
    """Hidden layers of a spec (the output layer is added by the network builder)."""
    kind, _, body = spec.partition(":")
    if kind == "resnet":
        return [ResNetPlan(*_stages(body or DEFAULT_RESNET, spec))]
    if kind == "mbv2":
        return [MobileNetPlan(*_stages(body or DEFAULT_MBV2, spec))]
    if kind == "cnn" and not body:
        body = DEFAULT_CNN
    if kind not in ("mlp", "cnn") or (kind == "mlp" and not body):
        raise OptionError(f"unknown model spec {spec!r}; use {SPEC_HELP}")
    plans: list[Plan] = []
    tokens = body.split("x") if kind == "mlp" else body.split("-")
    if len(tokens) > 256:
        raise OptionError(f"model spec {spec!r}: more than 256 layers")
    for tok in tokens:
        m = _DENSE.match(tok)
        if m:
            plans.append(DensePlan(_positive(int(m[1]), "width", spec), bool(m[2])))
            continue
        if kind == "mlp":
            raise OptionError(f"model spec {spec!r}: cannot read layer {tok!r}")
        if any(isinstance(p, DensePlan) for p in plans):
            raise OptionError(f"model spec {spec!r}: convolutions and pooling must come before dense layers")
        if tok == "gap":
            plans.append(PoolPlan("global"))
        elif tok == "se":
            plans.append(SEPlan())
        elif m := _POOL.match(tok):
            plans.append(PoolPlan("avg" if m[1] == "ap" else "max", _positive(int(m[2]), "pool window", spec, 256)))
        elif m := _DW.match(tok):
            k = _positive(int(m[1]), "kernel", spec, 64)
            plans.append(ConvPlan(0, k, _positive(int(m[2] or 1), "stride", spec, 64), k // 2, 0, bool(m[3]), True,
                                  _ACTIVATION[m[4]]))
        elif m := _CONV.match(tok):
            ch, k = _positive(int(m[1]), "channels", spec), _positive(int(m[2]), "kernel", spec, 64)
            k2 = _positive(int(m[3]), "kernel", spec, 64) if m[3] else k
            pad = int(m[5]) if m[5] is not None else None
            if pad is not None and pad > 64:
                raise OptionError(f"model spec {spec!r}: padding must be in 0..64, got {pad}")
            padding = (pad, pad) if pad is not None else (k // 2, k2 // 2)
            groups = _positive(int(m[6] or 1), "groups", spec)
            # square kernels and paddings stay plain ints (the spec's own notation)
            plans.append(ConvPlan(ch, k if k == k2 else (k, k2), _positive(int(m[4] or 1), "stride", spec, 64),
                                  padding[0] if padding[0] == padding[1] else padding, groups, bool(m[7]),
                                  activation=_ACTIVATION[m[8]]))
        else:
            raise OptionError(f"model spec {spec!r}: cannot read layer {tok!r}")
    return plans
