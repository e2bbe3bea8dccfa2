"""Every operation's C handler in one table (`HANDLERS`, what the program planner and the backend read): the
arithmetic kernels of `ops.py`, and the handlers of the operations edge CNNs add --

- every elementwise function of one int8 activation (`clip`, `hardswish`, `hardsigmoid`, `sigmoid`, `silu`,
  `tanh`, `gelu`, `scale_shift`) is ONE kernel, `tk_lut`: a 256-entry table computed at export from the
  operation's own numpy forward (input scale -> function -> output scale, a fused ReLU included), so the
  C and its emulation are bit-identical by construction and no function needs fixed-point code of its own;
- `mul` (the squeeze-excitation gate, with broadcasting): the int16 product requantised like every sum;
- `transpose` and `slice`: one strided copy, `tk_gather`; `reshape`: a view (no code, no memory).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixed import QMAX, finish, store, term
from .ops import HANDLERS as ARITHMETIC
from .ops import Alias, Step, Terms, _out, _rq_data, _rq_init, c_array

__all__ = ["HANDLERS", "REFUSALS", "Lut", "Mul", "Gather", "lut_table"]

MAX_RANK = 6  # tk_gather's loop depth (the rank of a sample, as core.ops.shape allows)


def lut_table(op: Any, in_scale: float, out_scale: float, lo: int) -> np.ndarray:
    """int8 y for every int8 x, indexed by x's byte (x & 0xFF): y = clamp(round(f(x * in_scale) / out_scale))."""
    x = (np.arange(256, dtype=np.int64) ^ 0x80) - 0x80  # byte b -> the int8 it holds
    real = op.forward((x.astype(np.float64) * in_scale).astype(np.float32).reshape(1, -1)).reshape(-1)
    q = np.rint(real.astype(np.float64) / out_scale)
    return np.clip(np.nan_to_num(q, nan=0.0), lo, QMAX).astype(np.int64)


class Lut:
    """tk_lut: y[i] = table[(uint8_t)x[i]]. The output has a scale of its own (calibrated, as every stored
    value), chosen before the table is built."""

    kernel = "lut"
    requantises = False
    rescales = True

    def prepare(self, step: Step, in_scales: list[float]) -> None:
        step.table = lut_table(step.op, in_scales[0], step.scale, step.lo)

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        return step.table[np.asarray(xs[0], np.int64) & 0xFF]

    def c_data(self, step: Step, sym: str) -> str:
        return c_array("int8_t", f"{sym}_t", step.table)

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        return f"tk_lut({step.size}, {xs[0]}, {sym}_t, {y});"


def _broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """C-order strides of `shape` read at every index of `out` (0 along a broadcast axis), padded to 4 axes."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc if d > 1 else 0)
        acc *= d
    strides = list(reversed(strides))
    return [0] * (4 - len(out)) + strides


class Mul:
    """tk_mul: the product of two int8 values (|p| <= 2^14) requantised with one gain, s_a * s_b / s_out."""

    kernel = "mul"
    requantises = True

    def terms(self, op: Any, in_scales: list[float], in_shapes: Any) -> list[Terms]:
        return [([np.array([in_scales[0] * in_scales[1]])], [np.array([128 * 128])], np.zeros(1))]

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        rq = step.rqs[0]
        p = np.asarray(xs[0], np.int64) * np.asarray(xs[1], np.int64)
        return store(finish(term(p, rq.m[0, 0], rq.e[0, 0]) + rq.b[0], rq.sh), rq)

    def c_data(self, step: Step, sym: str) -> str:
        out = tuple(step.out_shape)
        if len(out) > 4:
            raise ValueError("mul of rank > 4")
        dims = [1] * (4 - len(out)) + list(out)
        sa, sb = (_broadcast_strides(tuple(s), out) for s in step.in_shapes)
        rq = step.rqs[0]
        return _rq_data(sym, rq) + (f"static const tk_mul_t {sym} = {{{{{', '.join(map(str, dims))}}}, "
                                    f"{{{', '.join(map(str, sa))}}}, {{{', '.join(map(str, sb))}}}, "
                                    f"{_rq_init(sym, rq)}}};\n")

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        return f"tk_mul(&{sym}, {xs[0]}, {xs[1]}, {y8}, {y32});"


class Gather:
    """tk_gather: a strided copy (transpose: permuted strides; slice: an offset and the input's strides). The
    values do not change, so neither does the scale."""

    kernel = "gather"
    requantises = False

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        return step.op.forward(np.asarray(xs[0], np.int64))

    @staticmethod
    def plan(op: Any, shape: tuple[int, ...]) -> tuple[list[int], list[int], int]:
        """(output dims, input stride per output axis, input offset) of the copy."""
        strides = [int(np.prod(shape[k + 1:])) for k in range(len(shape))]
        if op.kind == "transpose":
            return [shape[p] for p in op.perm], [strides[p] for p in op.perm], 0
        dims = list(shape)
        dims[op.axis] = op.stop - op.start
        return dims, strides, op.start * strides[op.axis]

    def c_data(self, step: Step, sym: str) -> str:
        dims, strides, off = self.plan(step.op, tuple(step.in_shapes[0]))
        pad = MAX_RANK - len(dims)
        return (f"static const tk_gather_t {sym} = {{{len(dims)}, {step.size}, {off}, "
                f"{{{', '.join(map(str, dims + [1] * pad))}}}, {{{', '.join(map(str, strides + [0] * pad))}}}}};\n")

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        return f"tk_gather(&{sym}, {xs[0]}, {y});"


_LUT, _GATHER = Lut(), Gather()
HANDLERS: dict[str, Any] = {
    **ARITHMETIC,
    **{k: _LUT for k in ("clip", "hardswish", "hardsigmoid", "sigmoid", "silu", "tanh", "gelu", "scale_shift")},
    "mul": Mul(), "transpose": _GATHER, "slice": _GATHER, "reshape": Alias(),
}
REFUSALS: dict[str, str] = {
    "avgpool2d_exclude_pad": "its divisor changes at the borders; use count_include_pad=True (torch's default) or "
                             "no padding",
}
