"""Model specs: `mlp:256`, `mlp:512x256`, `cnn:16c5s2-32c5s2-100` -> a list of layer plans.

A conv token is `<channels>c<kernel>[s<stride>][p<padding>]` (padding defaults to kernel // 2);
a plain integer is a dense hidden layer. The output layer (one unit per class) is appended. There are no
pooling layers on purpose: strided convolutions map directly onto neuromorphic cores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ternkit.core.errors import OptionError

__all__ = ["ConvPlan", "DensePlan", "parse_model_spec", "DEFAULT_CNN"]

DEFAULT_CNN = "16c5s2-32c5s2-100"
_CONV = re.compile(r"^(\d+)c(\d+)(?:s(\d+))?(?:p(\d+))?$")


@dataclass(frozen=True)
class ConvPlan:
    channels: int
    kernel: int
    stride: int
    padding: int


@dataclass(frozen=True)
class DensePlan:
    units: int


def _positive(n: int, what: str, spec: str) -> int:
    if n < 1 or n > 1_000_000:
        raise OptionError(f"model spec {spec!r}: {what} must be in 1..1000000, got {n}")
    return n


def parse_model_spec(spec: str) -> list[ConvPlan | DensePlan]:
    """Hidden layers of a spec (the output layer is added by the network builder)."""
    kind, _, body = spec.partition(":")
    if kind == "cnn" and not body:
        body = DEFAULT_CNN
    if kind not in ("mlp", "cnn") or (kind == "mlp" and not body):
        raise OptionError(f"unknown model spec {spec!r}; use e.g. mlp:256, mlp:512x256 or cnn:{DEFAULT_CNN}")
    plans: list[ConvPlan | DensePlan] = []
    tokens = body.split("x") if kind == "mlp" else body.split("-")
    for tok in tokens:
        if tok.isdigit():
            plans.append(DensePlan(_positive(int(tok), "width", spec)))
            continue
        m = _CONV.match(tok) if kind == "cnn" else None
        if not m:
            raise OptionError(f"model spec {spec!r}: cannot read layer {tok!r}")
        if any(isinstance(p, DensePlan) for p in plans):
            raise OptionError(f"model spec {spec!r}: convolutions must come before dense layers")
        ch, k = _positive(int(m[1]), "channels", spec), _positive(int(m[2]), "kernel", spec)
        s = _positive(int(m[3] or 1), "stride", spec)
        p = int(m[4]) if m[4] is not None else k // 2
        plans.append(ConvPlan(ch, k, s, p))
    return plans
