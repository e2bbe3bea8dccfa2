"""One handler per operation kind for the C export: its fixed-point gains, its numpy emulation (the twin of
its C kernel in `c_kernels`, bit for bit) and the C that declares its parameters and calls the kernel.

Handlers are looked up by `op.kind` (`HANDLERS`); an operation without an integer form has no entry and is
refused with one line by `ternkit.core.ops.handler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ternkit.core.ops import im2col

from .fixed import Requant, finish, store, term
from .packing import TRITS_PER_BYTE, interleave, pack_rows

__all__ = ["Step", "HANDLERS", "Terms", "c_array", "c_call_streamed", "c_call_sink_streamed", "rows_in_blocks",
           "conv_paths", "plan_conv_paths"]

DW_TAPS = 32  # tk_dw_simd's limit (TK_DW_TAPS)
# (gains per term, static bound of |v| per term, real bias): what `c_fixed.choose` turns into integers
Terms = tuple[list[np.ndarray], list[np.ndarray], np.ndarray]


@dataclass(eq=False)
class Step:
    """One kernel call of tk_predict: computes the value of model node `node` from the values `inputs`."""

    kind: str
    node: str
    op: Any
    inputs: list[str]
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...]
    scale: float = 1.0  # real value of one output LSB
    scores: bool = False  # writes the int32 scores instead of an int8 buffer
    lo: int = -128  # 0 when a ReLU is fused into the step
    rqs: list[Requant] = field(default_factory=list)
    in_ring: int = 0  # rows of its input kept (the ring of the step it streams from), 0: all
    ring: int = 0  # rows of its output kept (a ring read by the next step, computed inside that step's call)
    streams_from: int = -1  # index of the step whose output rows this step's call computes as it needs them
    target: str = "generic"  # which kernels: "generic" (portable C99) or "cortex-m4" (SIMD dot products)
    packing: str = "2bit"  # weight storage: "2bit" or "base3" (base3 needs the SIMD kernels' decode table)
    table: Any = None  # the 256-entry int8 table of an elementwise function (handlers.Lut)
    blocks: bool = False  # dense SIMD: rows padded with zero rows to whole blocks of four (`rows_in_blocks`)
    taps_full: bool = True  # full (not depthwise) convs may take the tap kernel (plan_conv_paths)

    @property
    def simd(self) -> bool:
        """The SIMD kernels: the cortex-m4 target, or base-3 convs (their decode is the SIMD table)."""
        return self.target != "generic" or (self.packing != "2bit" and self.kind != "dense")

    @property
    def size(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def stored_size(self) -> int:
        """Bytes of its output buffer: the whole value, or its ring of rows."""
        if self.ring:
            c, _, w = self.out_shape
            return c * self.ring * w
        return self.size


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "uint8_t":
        items = [f"0x{int(v):02x}" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    items = items or ["0"]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return f"static const {ctype} {name}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _rq_data(sym: str, rq: Requant) -> str:
    """The lean arrays: int16 multipliers and biases per channel, one uint8 exponent per term (`fixed.Requant`)."""
    return (c_array("int16_t", f"{sym}_m", rq.m) + c_array("uint8_t", f"{sym}_e", rq.e[:, 0])
            + c_array("int16_t", f"{sym}_b", rq.b_stored))


def _rq_init(sym: str, rq: Requant) -> str:
    return f"{{{sym}_m, {sym}_e, {sym}_b, {rq.bs}, {rq.sh}, {rq.lo}, {rq.hi}}}"


def _out(step: Step, y: str) -> tuple[str, str]:
    return ("0", "scores") if step.scores else (y, "0")


def _requant(v: np.ndarray, rq: Requant, k: int, channel_axis: int | None) -> np.ndarray:
    """term of input k with per-channel (channel_axis) or per-tensor parameters."""
    if channel_axis is None:
        return term(v, rq.m[k, 0], rq.e[k, 0])
    shape = [1] * v.ndim
    shape[channel_axis] = -1
    return term(v, rq.m[k].reshape(shape), rq.e[k].reshape(shape))


def _bias(rq: Requant, ndim: int, channel_axis: int | None) -> np.ndarray:
    if channel_axis is None:
        return rq.b[0]
    shape = [1] * ndim
    shape[channel_axis] = -1
    return rq.b.reshape(shape)


def _rows_packed(q: np.ndarray, packing: str = "2bit", simd: bool = False, groups: int = 1
                 ) -> tuple[np.ndarray, int]:
    """Trits (rows, n) packed per row, each row padded to whole bytes: (bytes (rows, row_bytes), row_bytes);
    for the SIMD kernels, each group's rows interleaved by four (`packing.interleave`)."""
    packed, rb = pack_rows(q, packing)
    if simd:
        packed = interleave(packed, groups, 4)
    return packed, rb


BLOCK = 4  # rows per SIMD dot product (TK_BLOCK)
REST_CODE_BYTES = 200  # below the leftover-rows code it saves (tk_dot_rest: 256 B base-3, 280 B 2-bit on the M4)


def rows_in_blocks(steps: list[Step]) -> None:
    """Dense-only SIMD programs: pad every dense layer's rows with zero rows to whole blocks of four, when those
    rows take less flash than the code for leftover rows that then goes (one layer's last rows cost at most
    three dot products of four rows instead of one of two or one: the classifier's, once per inference)."""
    simd = [st for st in steps if st.kind in ("dense", "conv2d") and st.simd]  # the tk_rows users
    if not simd or any(st.kind != "dense" for st in simd):
        return
    pad = sum((-st.op.weight.shape[0]) % BLOCK * -(-st.op.weight.shape[1] // TRITS_PER_BYTE[st.packing])
              for st in simd)
    if pad < REST_CODE_BYTES:
        for st in simd:
            st.blocks = True


def _trit_bound(q: np.ndarray) -> np.ndarray:
    """Static bound of |accumulator| per output: 128 per non-zero trit."""
    return 128 * (q.reshape(q.shape[0], -1) != 0).sum(1).astype(np.int64)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer product through float64 BLAS: exact while every partial sum stays below 2^53 (here < 2^31)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


class Dense:
    kernel = "dense"
    requantises = True

    def terms(self, op, in_scales: list[float], in_shapes) -> list[Terms]:
        return [([op.channel_scale().astype(np.float64) * in_scales[0]], [_trit_bound(op.weight)],
                 op.bias.astype(np.float64))]

    def scratch(self, step: Step) -> int:
        """Streamed into (`tk_chain_dense`): its int32 accumulators."""
        return 4 * step.size if step.streams_from >= 0 else 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        rq = step.rqs[0]
        acc = _exact_matmul(xs[0].reshape(len(xs[0]), -1), step.op.weight.T)
        return store(finish(_requant(acc, rq, 0, 1) + _bias(rq, 2, 1), rq.sh), rq)

    def kernel_of(self, step: Step) -> str:
        if step.streams_from >= 0:
            return "dense_stream"
        return "dense_simd" if step.simd else "dense_b3" if step.packing == "base3" else "dense"

    def c_data(self, step: Step, sym: str) -> str:
        if step.streams_from >= 0:
            return _dense_stream_data(step, sym)
        w = step.op.weight
        if step.blocks:  # zero rows to a whole block of four: one dot product serves every row
            w = np.concatenate([w, np.zeros(((-len(w)) % BLOCK, w.shape[1]), w.dtype)])
        packed, row_bytes = _rows_packed(w, step.packing, step.simd)
        rq = step.rqs[0]
        if step.simd or step.packing == "base3":
            kind = "simd" if step.simd else "b3"
            init = (f"{{{sym}_w, {len(step.op.weight)}, {row_bytes}, {step.op.weight.shape[1]}, "
                    f"{_rq_init(sym, rq)}}}")
            decl = f"static const tk_dense_{kind}_t {sym} = {init};\n"
        else:
            init = f"{{{sym}_w, {packed.shape[0]}, {row_bytes}, {_rq_init(sym, rq)}}}"
            decl = f"static const tk_dense_t {sym} = {init};\n"
        return c_array("uint8_t", f"{sym}_w", packed, 32) + _rq_data(sym, rq) + decl

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        return f"tk_{self.kernel_of(step)}(&{sym}, {xs[0]}, {y8}, {y32});"


def _dense_stream_data(step: Step, sym: str) -> str:
    """A dense layer fed row by row by the conv before it (through a flatten): its columns regrouped by conv row
    (the flattened index c*H*W + y*W + x read as y, c, x: the order of one ring row), each row's C*W columns
    packed into whole bytes and interleaved by four rows like the plain SIMD dense. Storage only: the sums are
    the same integers in another order."""
    c, h, w = step.in_shapes[0]
    wt = step.op.weight.reshape(-1, c, h, w)
    parts = [_rows_packed(wt[:, :, y, :].reshape(len(wt), c * w), step.packing, True) for y in range(h)]
    packed = np.concatenate([p.reshape(-1) for p, _ in parts])
    rq = step.rqs[0]
    return (c_array("uint8_t", f"{sym}_w", packed, 32) + _rq_data(sym, rq)
            + f"static const tk_dense_simd_t {sym} = {{{sym}_w, {len(wt)}, {parts[0][1]}, {c * w}, "
              f"{_rq_init(sym, rq)}}};\n")


def _dw_stride(ow: int, sx: int, kw: int) -> int:
    """Bytes of one padded row of tk_conv_taps' buffer (TK_DW_STRIDE): passes of eight outputs, whose last word
    loads read up to byte 8 ceil(ow / 8) sx + kw - 2."""
    return (-(-ow // 8) * 8 * sx + kw + 2) & ~3


def _tap_rows(step: Step) -> int:
    """Padded input rows of tk_conv_taps' buffer (cin/groups x kh), 0 when the conv gathers receptive fields
    instead: the mirror of tk_taps_ok."""
    op = step.op
    if step.scores:  # int32 outputs: the gathering kernel
        return 0
    cout, cin_g, kh, kw = op.weight.shape
    rows, ow, sx = cin_g * kh, step.out_shape[2], op.stride[1]
    depthwise = cin_g == 1 and cout == op.groups
    ok = (rows * kw <= DW_TAPS and sx <= 2 and rows * _dw_stride(ow, sx, kw) <= 32767 and step.rqs[0].hi == 127
          and (depthwise or (step.taps_full and ow >= 16)))
    return rows if ok else 0


def plan_conv_paths(steps: list[Step]) -> None:
    """Full convs take the tap kernel only in a program that has it anyway for a depthwise conv: alone, the
    kernel's code (about 1.6 KB) outweighs what it saves on a few full convs, which gather instead."""
    convs = [st for st in steps if st.kind == "conv2d" and st.simd]
    for st in convs:
        st.taps_full = False
    full = any(_tap_rows(st) for st in convs)
    for st in convs:
        st.taps_full = full


def conv_paths(steps: list[Step]) -> tuple[bool, bool, bool]:
    """(any SIMD conv takes the tap kernel, any gathers, full convs may take it): model.c leaves out the kernel
    no step calls."""
    convs = [st for st in steps if st.kind == "conv2d" and st.simd]
    taps = [bool(_tap_rows(st)) for st in convs]
    return any(taps), not all(taps), all(st.taps_full for st in convs)


def _valid_range(size: int, out: int, k: int, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Per kernel offset: [lo, hi) of the output positions whose input through that offset is real."""
    lo, hi = np.zeros(k, np.int64), np.zeros(k, np.int64)
    pos = np.arange(out) * stride - pad
    for j in range(k):
        ok = np.nonzero((pos + j >= 0) & (pos + j < size))[0]
        lo[j], hi[j] = (ok[0], ok[-1] + 1) if ok.size else (0, 0)
    return lo, hi


def conv_int(x: np.ndarray, w: np.ndarray, stride, padding, groups: int) -> np.ndarray:
    """Exact integer cross-correlation, (N, C, H, W) x (Cout, Cin/g, kH, kW) -> (N, Cout, OH, OW) int64."""
    n = len(x)
    cout, cin_g, kh, kw = w.shape
    cols = im2col(x.astype(np.float64), (kh, kw), tuple(stride), tuple(padding))  # (n, c, oh, ow, kh, kw)
    oh, ow = cols.shape[2], cols.shape[3]
    cols = cols.reshape(n, groups, cin_g, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6).reshape(
        n, groups, oh * ow, cin_g * kh * kw)
    wm = w.astype(np.float64).reshape(groups, cout // groups, cin_g * kh * kw)
    y = np.rint(cols @ wm.transpose(0, 2, 1)).astype(np.int64)  # (n, g, oh*ow, cout_g)
    return y.transpose(0, 1, 3, 2).reshape(n, cout, oh, ow)


class Conv:
    kernel = "conv2d"
    requantises = True
    terms = Dense.terms

    def kernel_of(self, step: Step) -> str:
        return "conv_simd" if step.simd else "conv2d"

    def scratch(self, step: Step) -> int:
        if step.simd:  # the tap kernel's padded input rows, or one receptive field padded to whole weight bytes
            rows = _tap_rows(step)
            if rows:
                return rows * _dw_stride(step.out_shape[2], step.op.stride[1], step.op.kernel[1])
            per, taps, kw = TRITS_PER_BYTE[step.packing], int(np.prod(step.op.weight.shape[1:])), step.op.kernel[1]
            # tk_field copies a kernel row as whole words: the last one may write up to (-kw) % 4 bytes past the
            # field, into the padding trits (their weights are zero) or past them
            return max(-(-taps // per) * per, taps + (-kw) % 4)
        return 4 * int(np.prod(step.out_shape[1:]))

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        op, rq = step.op, step.rqs[0]
        acc = conv_int(xs[0], op.weight, op.stride, op.padding, op.groups)
        return store(finish(_requant(acc, rq, 0, 1) + _bias(rq, 4, 1), rq.sh), rq)

    def c_data(self, step: Step, sym: str) -> str:
        op, rq = step.op, step.rqs[0]
        cin, h, w = step.in_shapes[0]
        cout, oh, ow = step.out_shape
        kh, kw = op.kernel
        packed, kbytes = _rows_packed(op.weight.reshape(cout, -1), step.packing, step.simd, op.groups)
        if step.simd:
            in_rows = step.in_ring or h
            return (c_array("uint8_t", f"{sym}_w", packed, 32) + _rq_data(sym, rq)
                    + f"static const tk_conv_simd_t {sym} = {{{sym}_w, {cout}, {cin // op.groups}, "
                      f"{cout // op.groups}, {kh}, {kw}, {kbytes}, {h}, {w}, {oh}, {ow}, {op.stride[0]}, "
                      f"{op.stride[1]}, {op.padding[0]}, {op.padding[1]}, {in_rows}, {step.ring or oh}, "
                      f"{_rq_init(sym, rq)}}};\n")
        ylo, yhi = _valid_range(h, oh, kh, op.stride[0], op.padding[0])
        xlo, xhi = _valid_range(w, ow, kw, op.stride[1], op.padding[1])
        return (c_array("uint8_t", f"{sym}_w", packed, 32) + _rq_data(sym, rq)
                + "".join(c_array("int16_t", f"{sym}_{n}", a) for n, a in
                          (("ylo", ylo), ("yhi", yhi), ("xlo", xlo), ("xhi", xhi)))
                + f"static const tk_conv_t {sym} = {{{sym}_w, {cout}, {cin // op.groups}, {cout // op.groups}, "
                  f"{kh}, {kw}, {kbytes}, {h}, {w}, {oh}, {ow}, {op.stride[0]}, {op.stride[1]}, {op.padding[0]}, "
                  f"{op.padding[1]}, {sym}_ylo, {sym}_yhi, {sym}_xlo, {sym}_xhi, {_rq_init(sym, rq)}}};\n")

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        if step.simd:
            return f"tk_conv_simd(&{sym}, {xs[0]}, (int8_t *)(void *){scratch}, {y8}, {y32}, 0, {step.out_shape[1]});"
        return f"tk_conv(&{sym}, {xs[0]}, {scratch}, {y8}, {y32});"


def c_call_streamed(step: Step, sym: str, xs: list[str], y: str, scratch: str,
                    stages: list[tuple[str, str, str]]) -> str:
    """The call of a streamed chain of convs (`tk_chain`), made at its last conv: `stages` are the earlier
    convs' (symbol, input, ring) in order."""
    y8, y32 = _out(step, y)
    n = len(stages) + 1
    return (f"{{ {_stage_array([*stages, (sym, xs[0], '0')])} int32_t done[{n}]; "
            f"tk_chain(st, {n}, done, (int8_t *)(void *){scratch}, {y8}, {y32}); }}")


def _stage_array(stages: list[tuple[str, str, str]]) -> str:
    """`st`, a chain's stages. Where every buffer is in the arena their addresses are constants: a static array
    in flash (automatic, GCC would copy its image with memcpy, a library call); with the caller's input `q`
    among them, an automatic one filled in place."""
    if all(x != "q" for _, x, _ in stages):
        stages = [(s, _arena_const(x), _arena_const(r)) for s, x, r in stages]
        kind = "static const"
    else:
        kind = "const"
    items = [f"{{&{s}, {x}, {r}}}" for s, x, r in stages]
    return f"{kind} tk_stage_t st[{len(items)}] = {{{', '.join(items)}}};"


def _arena_const(ref: str) -> str:
    """An arena buffer `(a + N)` as an address constant (a static initializer cannot read the local `a`)."""
    return ref.replace("(a + ", "((int8_t *)tk_arena + ")


def c_call_sink_streamed(step: Step, sym: str, y: str, scratch: str, acc: int,
                         stages: list[tuple[str, str, str]]) -> str:
    """The call of a chain of convs streamed into a pooling (`tk_chain_pool`) or a dense layer
    (`tk_chain_dense`), made at that step: `stages` are the convs' (symbol, input, ring) in order, the last one's
    ring a single row; the accumulators lie `acc` bytes into the chain's scratch, after its receptive field."""
    y8, y32 = _out(step, y)
    n = len(stages)
    col = f"(int8_t *)(void *){scratch}"
    sink = ("dense" if step.kind == "dense" else "pool", "" if step.kind == "dense"
            else f"{int(HANDLERS[step.kind].is_max)}, ")
    return (f"{{ {_stage_array(stages)} int32_t done[{n}]; "
            f"tk_chain_{sink[0]}(st, {n}, done, {col}, &{sym}, {sink[1]}(int32_t *)(void *)({col} + {acc}), "
            f"{y8}, {y32}); }}")


class _Pool:
    kernel = "pool"
    is_max = False

    def kernel_of(self, step: Step) -> str:
        return "pool_stream" if step.streams_from >= 0 else "pool"

    def scratch(self, step: Step) -> int:
        """Streamed into (`tk_chain_pool`): its int32 window accumulators."""
        return 4 * step.size if step.streams_from >= 0 else 0

    def c_data(self, step: Step, sym: str) -> str:
        op = step.op
        c, h, w = step.in_shapes[0]
        _, oh, ow = step.out_shape
        rq = step.rqs[0] if step.rqs else None
        init = _rq_init(sym, rq) if rq else f"{{0, 0, 0, 0, 0, {step.lo}, 127}}"
        return ((_rq_data(sym, rq) if rq else "")
                + f"static const tk_pool_t {sym} = {{{c}, {h}, {w}, {oh}, {ow}, {op.kernel[0]}, {op.kernel[1]}, "
                  f"{op.stride[0]}, {op.stride[1]}, {op.padding[0]}, {op.padding[1]}, {init}}};\n")

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        return f"tk_pool(&{sym}, {int(self.is_max)}, {xs[0]}, {y8}, {y32});"


class AvgPool(_Pool):
    requantises = True

    def terms(self, op, in_scales: list[float], in_shapes) -> list[Terms]:
        k = op.kernel[0] * op.kernel[1]
        return [([np.array([in_scales[0] / k])], [np.array([128 * k])], np.zeros(1))]

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        op, rq = step.op, step.rqs[0]
        acc = im2col(xs[0].astype(np.int64), op.kernel, op.stride, op.padding, 0).sum((4, 5))
        return store(finish(_requant(acc, rq, 0, None) + rq.b[0], rq.sh), rq)


class MaxPool(_Pool):
    requantises = False
    is_max = True

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        op = step.op
        m = im2col(xs[0].astype(np.int64), op.kernel, op.stride, op.padding, -(1 << 40), op.ceil).max((4, 5))
        return np.clip(np.maximum(m, -128), step.lo, 127)


class Affine:
    kernel = "affine"
    requantises = True

    def terms(self, op, in_scales: list[float], in_shapes) -> list[Terms]:
        return [([op.scale.astype(np.float64) * in_scales[0]], [np.array([128])], op.bias.astype(np.float64))]

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        rq, x = step.rqs[0], xs[0]
        return store(finish(_requant(x, rq, 0, 1) + _bias(rq, x.ndim, 1), rq.sh), rq)

    def c_data(self, step: Step, sym: str) -> str:
        rq = step.rqs[0]
        c = step.out_shape[0]
        inner = int(np.prod(step.out_shape[1:]))
        return _rq_data(sym, rq) + f"static const tk_affine_t {sym} = {{{c}, {inner}, {_rq_init(sym, rq)}}};\n"

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        return f"tk_affine(&{sym}, {xs[0]}, {y8}, {y32});"


class Add:
    kernel = "add"
    requantises = True

    def terms(self, op, in_scales: list[float], in_shapes) -> list[Terms]:
        return [([np.array([s]) for s in in_scales], [np.array([128])] * len(in_scales), np.zeros(1))]

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        rq = step.rqs[0]
        t = sum(_requant(x, rq, k, None) for k, x in enumerate(xs)) + rq.b[0]
        return store(finish(t, rq.sh), rq)

    def c_data(self, step: Step, sym: str) -> str:
        rq = step.rqs[0]
        return _rq_data(sym, rq) + (f"static const tk_add_t {sym} = {{{len(step.inputs)}, {step.size}, "
                                    f"{_rq_init(sym, rq)}}};\n")

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        y8, y32 = _out(step, y)
        return f"{{ const int8_t *const in[{len(xs)}] = {{{', '.join(xs)}}}; tk_add(&{sym}, in, {y8}, {y32}); }}"


class Concat:
    kernel = "rescale"
    requantises = True

    def terms(self, op, in_scales: list[float], in_shapes) -> list[Terms]:
        return [([np.array([s])], [np.array([128])], np.zeros(1)) for s in in_scales]

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([store(finish(_requant(x, rq, 0, None) + rq.b[0], rq.sh), rq)
                               for x, rq in zip(xs, step.rqs, strict=True)], axis=1)

    def c_data(self, step: Step, sym: str) -> str:
        out = []
        for k, (rq, shape) in enumerate(zip(step.rqs, step.in_shapes, strict=True)):
            out.append(_rq_data(f"{sym}_{k}", rq) + f"static const tk_rescale_t {sym}_{k} = "
                       f"{{{int(np.prod(shape))}, {_rq_init(f'{sym}_{k}', rq)}}};\n")
        return "".join(out)

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        calls, off = [], 0
        for k, shape in enumerate(step.in_shapes):
            y8, y32 = ("0", f"scores + {off}") if step.scores else (f"{y} + {off}", "0")
            calls.append(f"tk_rescale(&{sym}_{k}, {xs[k]}, {y8}, {y32});")
            off += int(np.prod(shape))
        return " ".join(calls)


class Relu:
    kernel = "relu"
    requantises = False

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        return np.maximum(xs[0], 0)

    def c_data(self, step: Step, sym: str) -> str:
        return ""

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        return f"tk_relu({step.size}, {xs[0]}, {y});"


class Widen:
    """Not an operation of the model: the last value, when no requantising kernel produced it, copied into
    the int32 scores."""

    kernel = "widen"
    requantises = False

    def scratch(self, step: Step) -> int:
        return 0

    def emulate(self, step: Step, xs: list[np.ndarray]) -> np.ndarray:
        return xs[0].reshape(len(xs[0]), -1).astype(np.int64)

    def c_data(self, step: Step, sym: str) -> str:
        return ""

    def c_call(self, step: Step, sym: str, xs: list[str], y: str, scratch: str) -> str:
        return f"tk_widen({step.size}, {xs[0]}, scores);"


class Alias:
    """flatten: a C-order buffer read as a vector -- no code, no memory, the scale passes."""

    alias = True


HANDLERS: dict[str, Any] = {"dense": Dense(), "conv2d": Conv(), "avgpool2d": AvgPool(), "maxpool2d": MaxPool(),
                            "affine": Affine(), "add": Add(), "concat": Concat(), "relu": Relu(), "flatten": Alias()}
WIDEN = Widen()
