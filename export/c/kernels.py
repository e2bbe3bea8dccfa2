"""C99 source of the kernels the generated model.c is made of; `c_ops` pairs each with its numpy twin.

Conventions: activations are int8 in C order (C, H, W); weights are 2-bit two's complement trits, four per
byte, first trit in the low bits (the artifact's packing), each output row (dense) or output channel's kernel
(conv) starting on a byte. A trit's low bit says non-zero, its high bit says negative, so a connection is an
add, a subtract or nothing: no weight is ever multiplied. The multiplies that remain are tk_term (one per
output element and input term: the requantisation) and address arithmetic once per kernel tap or window.
Right shifts of negative values are arithmetic (GCC and Clang define them so). Loops that zero or copy are
kept from becoming memset/memcpy calls: the inference path calls no library function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COMMON", "KERNELS", "NEEDS"]

COMMON = r"""
#if defined(__GNUC__) && !defined(__clang__)
#define TK_KERNEL static __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TK_KERNEL static
#endif

/* c + ((a * m) >> 16), m an int16: one SMLAWB with the DSP extension */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define TK_SMLAWB(a, m, c) ((int32_t)__builtin_arm_smlawb((int32_t)(a), (int32_t)(m), (int32_t)(c)))
#else
#define TK_SMLAWB(a, m, c) ((int32_t)(((int64_t)(a) * (int16_t)(m)) >> 16) + (c))
#endif

/* c + hm(v << e, m): v times a gain m * 2^e / 2^16 (m an int16), rounded down; |v << e| < 2^31 by
   construction (fixed.py) */
static inline int32_t tk_term_add(int32_t v, int32_t m, uint32_t e, int32_t c) {
    return TK_SMLAWB((int32_t)((uint32_t)v << e), m, c);
}

static inline int32_t tk_term(int32_t v, int32_t m, uint32_t e) {
    return tk_term_add(v, m, e, 0);
}

/* drop the sh fraction bits: t holds a bias, and every bias holds the half LSB that rounds (fixed.py) */
static inline int32_t tk_fin(int32_t t, int32_t sh) {
    return t >> sh;
}

static inline void tk_put(int8_t *y8, int32_t *y32, int32_t i, int32_t v, int32_t lo, int32_t hi) {
    if (y32) y32[i] = v;
    else y8[i] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* per output channel c: multiplier m[c] (int16), bias b[c] << bs (int16 times one shift); one exponent e[k]
   per term k (per input of an add), the same for every channel */
typedef struct {
    const int16_t *m; const uint8_t *e; const int16_t *b; int8_t bs, sh, lo, hi;
} tk_rq_t;

static inline int32_t tk_bias(const tk_rq_t *rq, int32_t c) {
    return (int32_t)((uint32_t)(int32_t)rq->b[c] << rq->bs);
}

/* the requantised value of channel c's sum v (before the clamp) */
static inline int32_t tk_rq(const tk_rq_t *rq, int32_t c, int32_t v) {
    return tk_fin(tk_term_add(v, rq->m[c], rq->e[0], tk_bias(rq, c)), rq->sh);
}
"""

KERNELS: dict[str, str] = {
    "dense": r"""
typedef struct {
    const uint8_t *w; int32_t rows, row_bytes; tk_rq_t rq;
} tk_dense_t;

/* one output at a time, the accumulator in a register; all-zero bytes (four zero trits) are skipped */
TK_KERNEL void tk_dense(const tk_dense_t *p, const int8_t *x, int8_t *y8, int32_t *y32) {
    const uint8_t *w = p->w;
    for (int32_t o = 0; o < p->rows; o++) {
        int32_t acc = 0;
        const int8_t *xp = x;
        for (int32_t j = 0; j < p->row_bytes; j++, xp += 4) {
            uint32_t t = *w++;
            if (!t) continue;
            if (t & 1u) { if (t & 2u) acc -= xp[0]; else acc += xp[0]; }
            if (t & 4u) { if (t & 8u) acc -= xp[1]; else acc += xp[1]; }
            if (t & 16u) { if (t & 32u) acc -= xp[2]; else acc += xp[2]; }
            if (t & 64u) { if (t & 128u) acc -= xp[3]; else acc += xp[3]; }
        }
        tk_put(y8, y32, o, tk_rq(&p->rq, o, acc), p->rq.lo, p->rq.hi);
    }
}
""",
    "conv2d": r"""
typedef struct {
    const uint8_t *w; int32_t cout, cin_g, cout_g, kh, kw, kbytes;
    int32_t h, wd, oh, ow, sy, sx, py, px;
    const int16_t *ylo, *yhi, *xlo, *xhi; /* per kernel row / column: the output range it reads real input for */
    tk_rq_t rq;
} tk_conv_t;

/* weight-stationary: each non-zero trit of an output channel adds (or subtracts) one shifted input plane
   into the int32 accumulators of that channel; zero trits skip their whole plane */
TK_KERNEL void tk_conv(const tk_conv_t *p, const int8_t *x, int32_t *acc, int8_t *y8, int32_t *y32) {
    const int32_t hw = p->h * p->wd, ohw = p->oh * p->ow, rstep = p->sy * p->wd;
    const uint8_t *w = p->w;
    for (int32_t co = 0; co < p->cout; co++, w += p->kbytes) {
        const int8_t *xg = x + (co / p->cout_g) * p->cin_g * hw;
        for (int32_t i = 0; i < ohw; i++) acc[i] = 0;
        int32_t tap = 0;
        for (int32_t ci = 0; ci < p->cin_g; ci++) {
            for (int32_t ky = 0; ky < p->kh; ky++) {
                for (int32_t kx = 0; kx < p->kw; kx++, tap++) {
                    uint32_t t = (uint32_t)(w[tap >> 2] >> ((tap & 3) << 1)) & 3u;
                    int32_t y0 = p->ylo[ky], y1 = p->yhi[ky], x0 = p->xlo[kx], n = p->xhi[kx] - x0;
                    if (!t || y0 >= y1 || n <= 0) continue;
                    const int8_t *src = xg + ci * hw + (y0 * p->sy + ky - p->py) * p->wd + x0 * p->sx + kx - p->px;
                    int32_t *dst = acc + y0 * p->ow + x0;
                    for (int32_t r = y0; r < y1; r++, src += rstep, dst += p->ow) {
                        const int8_t *s = src;
                        if (t == 1u) { for (int32_t k = 0; k < n; k++, s += p->sx) dst[k] += *s; }
                        else { for (int32_t k = 0; k < n; k++, s += p->sx) dst[k] -= *s; }
                    }
                }
            }
        }
        const int32_t m = p->rq.m[co], b = tk_bias(&p->rq, co);
        const uint32_t e = p->rq.e[0];
        for (int32_t i = 0; i < ohw; i++)
            tk_put(y8, y32, co * ohw + i, tk_fin(tk_term(acc[i], m, e) + b, p->rq.sh), p->rq.lo, p->rq.hi);
    }
}
""",
    "pool": r"""
typedef struct {
    int32_t c, h, wd, oh, ow, kh, kw, sy, sx, py, px; tk_rq_t rq;
} tk_pool_t;

/* average pooling: the window sum (padding counts as zero, the divisor is the full window, folded into
   the requantisation gain); max pooling: the largest real input, no requantisation (the scale passes) */
TK_KERNEL void tk_pool(const tk_pool_t *p, int32_t is_max, const int8_t *x, int8_t *y8, int32_t *y32) {
    int32_t o = 0;
    for (int32_t c = 0; c < p->c; c++) {
        const int8_t *xc = x + c * p->h * p->wd;
        for (int32_t oy = 0; oy < p->oh; oy++) {
            for (int32_t ox = 0; ox < p->ow; ox++, o++) {
                int32_t acc = is_max ? -128 : 0;
                for (int32_t ky = 0; ky < p->kh; ky++) {
                    int32_t iy = oy * p->sy + ky - p->py;
                    if (iy < 0 || iy >= p->h) continue;
                    for (int32_t kx = 0; kx < p->kw; kx++) {
                        int32_t ix = ox * p->sx + kx - p->px;
                        if (ix < 0 || ix >= p->wd) continue;
                        int32_t v = xc[iy * p->wd + ix];
                        if (is_max) { if (v > acc) acc = v; }
                        else acc += v;
                    }
                }
                if (is_max) tk_put(y8, y32, o, acc, p->rq.lo, p->rq.hi);
                else tk_put(y8, y32, o, tk_rq(&p->rq, 0, acc), p->rq.lo, p->rq.hi);
            }
        }
    }
}
""",
    "affine": r"""
typedef struct {
    int32_t c, inner; tk_rq_t rq;
} tk_affine_t;

/* y = x * scale[c] + bias[c]: the one op whose arithmetic is a multiply (tk_term per element) */
TK_KERNEL void tk_affine(const tk_affine_t *p, const int8_t *x, int8_t *y8, int32_t *y32) {
    int32_t o = 0;
    for (int32_t c = 0; c < p->c; c++) {
        const int32_t m = p->rq.m[c], b = tk_bias(&p->rq, c);
        const uint32_t e = p->rq.e[0];
        for (int32_t i = 0; i < p->inner; i++, o++)
            tk_put(y8, y32, o, tk_fin(tk_term(x[o], m, e) + b, p->rq.sh), p->rq.lo, p->rq.hi);
    }
}
""",
    "add": r"""
typedef struct {
    int32_t n, len; tk_rq_t rq; /* m[k], e[k]: the gain of input k */
} tk_add_t;

TK_KERNEL void tk_add(const tk_add_t *p, const int8_t *const *xs, int8_t *y8, int32_t *y32) {
    for (int32_t i = 0; i < p->len; i++) {
        int32_t t = tk_bias(&p->rq, 0);
        for (int32_t k = 0; k < p->n; k++) t += tk_term(xs[k][i], p->rq.m[k], p->rq.e[k]);
        tk_put(y8, y32, i, tk_fin(t, p->rq.sh), p->rq.lo, p->rq.hi);
    }
}
""",
    "rescale": r"""
typedef struct {
    int32_t len; tk_rq_t rq;
} tk_rescale_t;

/* one input of a concat, brought to the output's scale and written into its slice */
TK_KERNEL void tk_rescale(const tk_rescale_t *p, const int8_t *x, int8_t *y8, int32_t *y32) {
    for (int32_t i = 0; i < p->len; i++)
        tk_put(y8, y32, i, tk_rq(&p->rq, 0, x[i]), p->rq.lo, p->rq.hi);
}
""",
    "relu": r"""
TK_KERNEL void tk_relu(int32_t len, const int8_t *x, int8_t *y) {
    for (int32_t i = 0; i < len; i++) y[i] = x[i] > 0 ? x[i] : 0;
}
""",
    "widen": r"""
/* an int8 output (its scale is the scores' scale) widened to the int32 scores */
TK_KERNEL void tk_widen(int32_t len, const int8_t *x, int32_t *y) {
    for (int32_t i = 0; i < len; i++) y[i] = x[i];
}
""",
}


# ------------------------------------------------------------------ SIMD kernels (`--target cortex-m4`)
# Weights stay packed in flash; a table turns one weight byte into the ±1/0 halfword pairs that SMLAD
# multiplies with two sign-extended activations: 2-bit packing, one byte = 4 trits -> 2 words (2 KiB of
# flash); base-3 packing, one byte = 5 trits -> 2 words and a byte (243 entries, 2,187 bytes). The decode is one table
# read per byte, so 1.6-bit storage costs no speed. Without the DSP extension (a host build of the same
# file) the three intrinsics are plain C with the same results.
SIMD_COMMON = r"""
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TK_SXTB16(v) ((int32_t)__sxtb16((int32_t)(v)))
static inline int32_t tk_sxtb16_ror8(uint32_t v) {
    int32_t r;
    __asm ("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#define TK_SXTB16_ROR8(v) tk_sxtb16_ror8(v)
#define TK_SMLAD(a, b, c) ((int32_t)__smlad((int32_t)(a), (int32_t)(b), (c)))
#define TK_SADD16(a, b) ((int32_t)__sadd16((int32_t)(a), (int32_t)(b)))
#define TK_SSUB16(a, b) ((int32_t)__ssub16((int32_t)(a), (int32_t)(b)))
#define TK_SSAT8(t) __ssat((t), 8)
/* (low half of a, low half of b) and (high half of b, high half of a) */
static inline int32_t tk_pkhbt(int32_t a, int32_t b) {
    int32_t r;
    __asm ("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t tk_pkhtb(int32_t a, int32_t b) {
    int32_t r;
    __asm ("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#define TK_PKHBT(a, b) tk_pkhbt((a), (b))
#define TK_PKHTB(a, b) tk_pkhtb((a), (b))
#if defined(__GNUC__) && defined(__thumb2__)
#define TK_DSP_ASM 1 /* the inner loops in hand-scheduled Thumb-2 */
#endif
#else
static inline int32_t tk_sxtb16(uint32_t v) {
    return (int32_t)(((uint32_t)(uint16_t)(int16_t)(int8_t)(v >> 16) << 16) | (uint16_t)(int16_t)(int8_t)v);
}
#define TK_SXTB16(v) tk_sxtb16(v)
#define TK_SXTB16_ROR8(v) tk_sxtb16((v) >> 8)
static inline int32_t tk_smlad(int32_t a, int32_t b, int32_t c) {
    return c + (int32_t)(int16_t)a * (int16_t)b + (a >> 16) * (b >> 16);
}
#define TK_SMLAD(a, b, c) tk_smlad((a), (b), (c))
static inline int32_t tk_add16(int32_t a, int32_t b, int32_t sign) {
    const uint32_t lo = (uint16_t)((int16_t)a + sign * (int16_t)b), hi = (uint16_t)((a >> 16) + sign * (b >> 16));
    return (int32_t)(hi << 16 | lo);
}
#define TK_SADD16(a, b) tk_add16((a), (b), 1)
#define TK_SSUB16(a, b) tk_add16((a), (b), -1)
#define TK_SSAT8(t) ((t) < -128 ? -128 : (t) > 127 ? 127 : (t))
#define TK_PKHBT(a, b) ((int32_t)(((uint32_t)(b) << 16) | ((uint32_t)(a) & 0xFFFFu)))
#define TK_PKHTB(a, b) ((int32_t)(((uint32_t)(a) & 0xFFFF0000u) | ((uint32_t)(b) >> 16)))
#endif
#ifndef TK_DSP_ASM
#define TK_DSP_ASM 0
#endif
/* the table bases kept in registers (one load per table entry, not an address sum and a load) */
#if defined(__GNUC__)
#define TK_OPAQUE(p) __asm ("" : "+r"(p))
#else
#define TK_OPAQUE(p) (void)(p)
#endif
#if defined(__GNUC__)
#define TK_NOINLINE __attribute__((noinline)) /* a kernel of its own: its registers are not shared with a caller's */
#else
#define TK_NOINLINE
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define TK_UNROLL2 _Pragma("GCC unroll 2")
#else
#define TK_UNROLL2
#endif

/* the first k (< 4) activations of x as one word, the rest zeros (no read past x[k - 1]) */
static inline uint32_t tk_rd_part(const int8_t *x, int32_t k) {
    uint32_t v = 0;
    while (k > 0) v = v << 8 | (uint8_t)x[--k];
    return v;
}

/* four activations as one word (the target allows unaligned loads; no library call is made) */
static inline uint32_t tk_rd32(const int8_t *p) {
#if defined(__GNUC__)
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)(uint8_t)p[0] | (uint32_t)(uint8_t)p[1] << 8 | (uint32_t)(uint8_t)p[2] << 16
           | (uint32_t)(uint8_t)p[3] << 24;
#endif
}

static inline void tk_wr32(int8_t *p, uint32_t v) {
#if defined(__GNUC__)
    __builtin_memcpy(p, &v, 4);
#else
    for (int32_t i = 0; i < 4; i++) p[i] = (int8_t)(uint8_t)(v >> 8 * i);
#endif
}
"""

DOT = {
    "2bit": r"""
#define TK_TRITS_PER_BYTE 4
#define TK_BLOCK 4 /* rows interleaved by four */
/* trit k of a plain (not interleaved) row */
static inline int32_t tk_trit(const uint8_t *w, int32_t k) {
    const int32_t c = (w[k >> 2] >> ((k & 3) << 1)) & 3;
    return c == 1 ? 1 : c == 3 ? -1 : 0;
}
/* the 2-bit codes (01: +1, 11: -1, 00: 0) of trits [k0, k0 + 16) of a row of n trits whose byte j is w[j * bstep],
   trit k at bits 2k - 2k0; k0 a multiple of 16, no byte past the row read */
static inline uint32_t tk_codes16(const uint8_t *w, int32_t bstep, int32_t k0, int32_t n) {
    const int32_t b0 = k0 >> 2, b1 = (n + 3) >> 2 < b0 + 4 ? (n + 3) >> 2 : b0 + 4;
    uint32_t v = 0;
    for (int32_t j = b1 - 1; j >= b0; j--) v = v << 8 | w[j * bstep];
    return v;
}
/* s[0] (and s[1] when w1) += sum_j trit_j * x[j], j < n: per weight byte, its trits as halfword pairs (t0, t2)
   and (t1, t3) from two tables, SMLAD'd with (x0, x2) and (x1, x3) */
static inline void tk_dot(const uint8_t *w0, const uint8_t *w1, const int8_t *x, int32_t n, int32_t *s) {
    int32_t s0 = s[0], s1 = s[1];
    const int32_t *la = tk_trits_a, *lb = tk_trits_b;
    TK_OPAQUE(la);
    TK_OPAQUE(lb);
    const int8_t *const end = x + (n & ~3);
#if TK_DSP_ASM
    if (w1 && x < end) { /* 15 instructions per 8 MACs */
        uint32_t v, xa, xb, t0, t1;
        __asm volatile(
            "1:\n\t"
            "ldr %[v], [%[x]], #4\n\t"
            "ldrb %[t0], [%[w0]], #1\n\t"
            "ldrb %[t1], [%[w1]], #1\n\t"
            "sxtb16 %[xa], %[v]\n\t"
            "sxtb16 %[xb], %[v], ror #8\n\t"
            "ldr %[v], [%[la], %[t0], lsl #2]\n\t"
            "smlad %[s0], %[xa], %[v], %[s0]\n\t"
            "ldr %[v], [%[la], %[t1], lsl #2]\n\t"
            "smlad %[s1], %[xa], %[v], %[s1]\n\t"
            "ldr %[v], [%[lb], %[t0], lsl #2]\n\t"
            "smlad %[s0], %[xb], %[v], %[s0]\n\t"
            "ldr %[v], [%[lb], %[t1], lsl #2]\n\t"
            "smlad %[s1], %[xb], %[v], %[s1]\n\t"
            "cmp %[x], %[end]\n\t"
            "bne 1b"
            : [s0] "+r"(s0), [s1] "+r"(s1), [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [v] "=&r"(v),
              [xa] "=&r"(xa), [xb] "=&r"(xb), [t0] "=&r"(t0), [t1] "=&r"(t1)
            : [end] "r"(end), [la] "r"(la), [lb] "r"(lb)
            : "cc", "memory");
        x = end; /* where the loop left it: the C loop below is then dead code, not compiled */
    }
#endif
    if (w1) {
        for (; x < end; x += 4) {
            uint32_t v = tk_rd32(x), b0 = *w0++, b1 = *w1++;
            int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v);
            s0 = TK_SMLAD(xa, la[b0], s0);
            s1 = TK_SMLAD(xa, la[b1], s1);
            s0 = TK_SMLAD(xb, lb[b0], s0);
            s1 = TK_SMLAD(xb, lb[b1], s1);
        }
    } else {
        for (; x < end; x += 4) {
            uint32_t v = tk_rd32(x), b0 = *w0++;
            s0 = TK_SMLAD(TK_SXTB16(v), la[b0], s0);
            s0 = TK_SMLAD(TK_SXTB16_ROR8(v), lb[b0], s0);
        }
    }
    for (int32_t k = 0; k < (n & 3); k++) { /* the last partial byte */
        const int32_t *t = k & 1 ? lb : la, sh = 16 * (k >> 1);
        s0 += x[k] * (int32_t)(int16_t)(t[*w0] >> sh);
        if (w1) s1 += x[k] * (int32_t)(int16_t)(t[*w1] >> sh);
    }
    s[0] = s0;
    s[1] = s1;
}

/* four rows at once, their bytes interleaved (w[4 j + r] is byte j of row r): s[r] += sum_j trit * x[j] */
static inline void tk_dot4(const uint8_t *w, const int8_t *x, int32_t n, int32_t *s) {
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const int32_t *la = tk_trits_a, *lb = tk_trits_b;
    TK_OPAQUE(la);
    TK_OPAQUE(lb);
    const int8_t *const end = x + (n & ~3);
#if TK_DSP_ASM
    if (x < end) { /* 25 instructions per 16 MACs */
        uint32_t v, xa, xb, t;
        __asm volatile(
            "1:\n\t"
            "ldr %[v], [%[x]], #4\n\t"
            "sxtb16 %[xa], %[v]\n\t"
            "sxtb16 %[xb], %[v], ror #8\n\t"
            "ldrb %[t], [%[w], #1]\n\t"
            "ldr %[v], [%[la], %[t], lsl #2]\n\t"
            "smlad %[s1], %[xa], %[v], %[s1]\n\t"
            "ldr %[v], [%[lb], %[t], lsl #2]\n\t"
            "smlad %[s1], %[xb], %[v], %[s1]\n\t"
            "ldrb %[t], [%[w], #2]\n\t"
            "ldr %[v], [%[la], %[t], lsl #2]\n\t"
            "smlad %[s2], %[xa], %[v], %[s2]\n\t"
            "ldr %[v], [%[lb], %[t], lsl #2]\n\t"
            "smlad %[s2], %[xb], %[v], %[s2]\n\t"
            "ldrb %[t], [%[w], #3]\n\t"
            "ldr %[v], [%[la], %[t], lsl #2]\n\t"
            "smlad %[s3], %[xa], %[v], %[s3]\n\t"
            "ldr %[v], [%[lb], %[t], lsl #2]\n\t"
            "smlad %[s3], %[xb], %[v], %[s3]\n\t"
            "ldrb %[t], [%[w]], #4\n\t"
            "ldr %[v], [%[la], %[t], lsl #2]\n\t"
            "smlad %[s0], %[xa], %[v], %[s0]\n\t"
            "ldr %[v], [%[lb], %[t], lsl #2]\n\t"
            "smlad %[s0], %[xb], %[v], %[s0]\n\t"
            "cmp %[x], %[end]\n\t"
            "bne 1b"
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(x), [w] "+r"(w),
              [v] "=&r"(v), [xa] "=&r"(xa), [xb] "=&r"(xb), [t] "=&r"(t)
            : [end] "r"(end), [la] "r"(la), [lb] "r"(lb)
            : "cc", "memory");
        x = end; /* where the loop left it: the C loop below is then dead code, not compiled */
    }
#endif
    for (; x < end; x += 4, w += 4) {
        uint32_t v = tk_rd32(x);
        int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v);
        s0 = TK_SMLAD(xb, lb[w[0]], TK_SMLAD(xa, la[w[0]], s0));
        s1 = TK_SMLAD(xb, lb[w[1]], TK_SMLAD(xa, la[w[1]], s1));
        s2 = TK_SMLAD(xb, lb[w[2]], TK_SMLAD(xa, la[w[2]], s2));
        s3 = TK_SMLAD(xb, lb[w[3]], TK_SMLAD(xa, la[w[3]], s3));
    }
    for (int32_t k = 0; k < (n & 3); k++) { /* the last partial byte */
        const int32_t *t = k & 1 ? lb : la, sh = 16 * (k >> 1);
        s0 += x[k] * (int32_t)(int16_t)(t[w[0]] >> sh);
        s1 += x[k] * (int32_t)(int16_t)(t[w[1]] >> sh);
        s2 += x[k] * (int32_t)(int16_t)(t[w[2]] >> sh);
        s3 += x[k] * (int32_t)(int16_t)(t[w[3]] >> sh);
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}
""",
    "base3": r"""
#define TK_TRITS_PER_BYTE 5
#define TK_BLOCK 4 /* rows interleaved by four */
/* trit k of a plain (not interleaved) row */
static inline int32_t tk_trit(const uint8_t *w, int32_t k) {
    int32_t b = w[k / 5];
    for (int32_t i = k % 5; i > 0; i--) b /= 3;
    return b % 3 - 1;
}
/* the 2-bit codes (01: +1, 11: -1, 00: 0) of trits [k0, k0 + 16) of a row of n trits whose byte j is w[j * bstep],
   trit k at bits 2k - 2k0: each byte's five codes from the decode table (a trit's low two bits are its code) */
static inline uint32_t tk_codes16(const uint8_t *w, int32_t bstep, int32_t k0, int32_t n) {
    const int32_t k1 = n < k0 + 16 ? n : k0 + 16;
    uint32_t v = 0;
    for (int32_t j = k0 / 5; 5 * j < k1; j++) {
        const int32_t b = w[j * bstep], pos = 2 * (5 * j - k0);
        const uint32_t a = (uint32_t)tk_trits[0][b], c = (uint32_t)tk_trits[1][b];
        const uint32_t codes = (a & 3u) | (c & 3u) << 2 | (a >> 12 & 0x30u) | (c >> 10 & 0xC0u)
                               | ((uint32_t)tk_trits_c[b] & 3u) << 8;
        v |= pos >= 0 ? codes << pos : codes >> -pos;
    }
    return v;
}
/* s[0] (and s[1] when w1) += sum_j trit_j * x[j], j < n: per weight byte (5 trits), SMLAD of (x0, x2) and
   (x1, x3) with the table's halfword trits, and x4 times the fifth */
static inline void tk_dot(const uint8_t *w0, const uint8_t *w1, const int8_t *x, int32_t n, int32_t *s) {
    int32_t s0 = s[0], s1 = s[1];
    const int32_t *const la = tk_trits[0], *const lb = tk_trits[1];
    const int8_t *const lc = tk_trits_c;
    const int8_t *const end = x + n - n % 5;
    for (; x < end; x += 5) {
        uint32_t v = tk_rd32(x), b0 = *w0++;
        int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v), x4 = x[4];
        s0 = TK_SMLAD(xb, lb[b0], TK_SMLAD(xa, la[b0], s0)) + x4 * lc[b0];
        if (w1) {
            uint32_t b1 = *w1++;
            s1 = TK_SMLAD(xb, lb[b1], TK_SMLAD(xa, la[b1], s1)) + x4 * lc[b1];
        }
    }
    if (n % 5) { /* the last partial byte (never its fifth trit), its activations as one zero-padded word */
        const uint32_t v = tk_rd_part(x, n % 5);
        const int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v);
        s0 = TK_SMLAD(xb, lb[*w0], TK_SMLAD(xa, la[*w0], s0));
        if (w1) s1 = TK_SMLAD(xb, lb[*w1], TK_SMLAD(xa, la[*w1], s1));
    }
    s[0] = s0;
    s[1] = s1;
}

/* four rows at once, their bytes interleaved (w[4 j + r] is byte j of row r): s[r] += sum_j trit * x[j] */
static inline void tk_dot4(const uint8_t *w, const int8_t *x, int32_t n, int32_t *s) {
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const int8_t *const end = x + n - n % 5;
#if TK_DSP_ASM
    if (x < end) { /* 38 instructions per 20 MACs; two scratch registers: the byte / fifth trit / word a in
                      i, the address / word b in t */
        const int32_t *la = tk_trits[0];
        const int8_t *lc = tk_trits_c;
        uint32_t xa, xb, x4, i, t;
        __asm volatile(
            "1:\n\t"
            "ldr %[t], [%[x]], #5\n\t"
            "sxtb16 %[xa], %[t]\n\t"
            "sxtb16 %[xb], %[t], ror #8\n\t"
            "ldrsb %[x4], [%[x], #-1]\n\t"
            "ldrb %[i], [%[w], #1]\n\t"
            "add %[t], %[la], %[i], lsl #2\n\t"
            "ldrsb %[i], [%[lc], %[i]]\n\t"
            "mla %[s1], %[x4], %[i], %[s1]\n\t"
            "ldr %[i], [%[t]]\n\t"
            "smlad %[s1], %[xa], %[i], %[s1]\n\t"
            "ldr %[t], [%[t], #972]\n\t"
            "smlad %[s1], %[xb], %[t], %[s1]\n\t"
            "ldrb %[i], [%[w], #2]\n\t"
            "add %[t], %[la], %[i], lsl #2\n\t"
            "ldrsb %[i], [%[lc], %[i]]\n\t"
            "mla %[s2], %[x4], %[i], %[s2]\n\t"
            "ldr %[i], [%[t]]\n\t"
            "smlad %[s2], %[xa], %[i], %[s2]\n\t"
            "ldr %[t], [%[t], #972]\n\t"
            "smlad %[s2], %[xb], %[t], %[s2]\n\t"
            "ldrb %[i], [%[w], #3]\n\t"
            "add %[t], %[la], %[i], lsl #2\n\t"
            "ldrsb %[i], [%[lc], %[i]]\n\t"
            "mla %[s3], %[x4], %[i], %[s3]\n\t"
            "ldr %[i], [%[t]]\n\t"
            "smlad %[s3], %[xa], %[i], %[s3]\n\t"
            "ldr %[t], [%[t], #972]\n\t"
            "smlad %[s3], %[xb], %[t], %[s3]\n\t"
            "ldrb %[i], [%[w]], #4\n\t"
            "add %[t], %[la], %[i], lsl #2\n\t"
            "ldrsb %[i], [%[lc], %[i]]\n\t"
            "mla %[s0], %[x4], %[i], %[s0]\n\t"
            "ldr %[i], [%[t]]\n\t"
            "smlad %[s0], %[xa], %[i], %[s0]\n\t"
            "ldr %[t], [%[t], #972]\n\t"
            "smlad %[s0], %[xb], %[t], %[s0]\n\t"
            "cmp %[x], %[end]\n\t"
            "bne 1b"
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(x), [w] "+r"(w),
              [xa] "=&r"(xa), [xb] "=&r"(xb), [x4] "=&r"(x4), [i] "=&r"(i), [t] "=&r"(t)
            : [end] "r"(end), [la] "r"(la), [lc] "r"(lc)
            : "cc", "memory");
        x = end; /* where the loop left it: the C loop below is then dead code, not compiled */
    }
#endif
    const int32_t *const la = tk_trits[0], *const lb = tk_trits[1];
    const int8_t *const lc = tk_trits_c;
    for (; x < end; x += 5, w += 4) {
        uint32_t v = tk_rd32(x);
        int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v), x4 = x[4];
        s0 = TK_SMLAD(xb, lb[w[0]], TK_SMLAD(xa, la[w[0]], s0)) + x4 * lc[w[0]];
        s1 = TK_SMLAD(xb, lb[w[1]], TK_SMLAD(xa, la[w[1]], s1)) + x4 * lc[w[1]];
        s2 = TK_SMLAD(xb, lb[w[2]], TK_SMLAD(xa, la[w[2]], s2)) + x4 * lc[w[2]];
        s3 = TK_SMLAD(xb, lb[w[3]], TK_SMLAD(xa, la[w[3]], s3)) + x4 * lc[w[3]];
    }
    if (n % 5) { /* the last partial byte (never its fifth trit), its activations as one zero-padded word */
        const uint32_t v = tk_rd_part(x, n % 5);
        const int32_t xa = TK_SXTB16(v), xb = TK_SXTB16_ROR8(v);
        s0 = TK_SMLAD(xb, lb[w[0]], TK_SMLAD(xa, la[w[0]], s0));
        s1 = TK_SMLAD(xb, lb[w[1]], TK_SMLAD(xa, la[w[1]], s1));
        s2 = TK_SMLAD(xb, lb[w[2]], TK_SMLAD(xa, la[w[2]], s2));
        s3 = TK_SMLAD(xb, lb[w[3]], TK_SMLAD(xa, la[w[3]], s3));
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}
""",
}

# base-3 weights with the portable kernels (dense): the five digits of a byte by division, no table
KERNELS["dense_b3"] = r"""
typedef struct {
    const uint8_t *w; int32_t rows, row_bytes, cols; tk_rq_t rq;
} tk_dense_b3_t;

/* one output at a time; each weight byte's base-3 digits by division (digit 2: +x, 0: -x, 1: nothing) */
TK_KERNEL void tk_dense_b3(const tk_dense_b3_t *p, const int8_t *x, int8_t *y8, int32_t *y32) {
    const uint8_t *w = p->w;
    for (int32_t o = 0; o < p->rows; o++) {
        int32_t acc = 0, j = 0;
        for (int32_t k = 0; k < p->row_bytes; k++) {
            uint32_t b = *w++;
            for (int32_t i = 0; i < 5 && j < p->cols; i++, j++) {
                const uint32_t d = b % 3u;
                b /= 3u;
                if (d == 2u) acc += x[j];
                else if (d == 0u) acc -= x[j];
            }
        }
        tk_put(y8, y32, o, tk_rq(&p->rq, o, acc), p->rq.lo, p->rq.hi);
    }
}
"""

SIMD_KERNELS: dict[str, str] = {
    "dense_simd": r"""
typedef struct {
    const uint8_t *w; int32_t rows, row_bytes, cols; tk_rq_t rq;
} tk_dense_simd_t;

/* several output rows at a time share each activation word */
TK_KERNEL void tk_dense_simd(const tk_dense_simd_t *p, const int8_t *x, int8_t *y8, int32_t *y32) {
    for (int32_t o = 0; o < p->rows;) {
        int32_t s[4];
#ifdef TK_ROWS_OF_FOUR /* rows padded with zero rows to whole blocks of four */
        const int32_t k = p->rows - o < 4 ? p->rows - o : 4;
        tk_dot4(p->w + o * p->row_bytes, x, p->cols, s);
#else
        const int32_t k = tk_rows(p->w + o * p->row_bytes, p->rows - o, p->row_bytes, x, p->cols, s);
#endif
        for (int32_t r = 0; r < k; r++, o++)
            tk_put(y8, y32, o, tk_rq(&p->rq, o, s[r]), p->rq.lo, p->rq.hi);
    }
}
""",
    "conv_simd": r"""
typedef struct {
    const uint8_t *w; int32_t cout, cin_g, cout_g, kh, kw, kbytes;
    int32_t h, wd, oh, ow, sy, sx, py, px;
    int32_t in_rows, out_rows; /* rows stored of the input / output planes: all, or a ring of the last few */
    tk_rq_t rq;
} tk_conv_simd_t;

#define TK_DW_TAPS 32 /* the tap kernel's most taps per output */
/* bytes of one padded row of the tap kernel's buffer: passes of eight output pixels, whose last word loads read up
   to byte 8 ceil(ow / 8) sx + kw - 2 (ops.py: _dw_stride) */
#define TK_DW_STRIDE(ow, sx, kw) (((((ow) + 7) & ~7) * (sx) + (kw) + 2) & ~3)

/* One channel's requantisation held in registers across its outputs: its multiplier and its whole bias (b << bs,
   the final rounding's half LSB in it); the exponent is the layer's (rq->e[0], one per term). tk_req is tk_rq:
   LSL, one SMLAWB with the bias as addend, the shift (bit-identical to fixed.py). */
typedef struct {
    int32_t m, b;
} tk_ch_t;

static inline tk_ch_t tk_ch(const tk_rq_t *rq, int32_t c) {
    tk_ch_t k;
    k.m = rq->m[c];
    k.b = tk_bias(rq, c);
    return k;
}

static inline int32_t tk_req(const tk_ch_t *k, int32_t v, uint32_t e, int32_t sh) {
    return tk_fin(tk_term_add(v, k->m, e, k->b), sh);
}

static inline int32_t tk_clamp(int32_t t, int32_t lo, int32_t hi) {
    return t < lo ? lo : t > hi ? hi : t;
}

/* an int8 output with the upper bound 127: saturated to int8, then the lower bound (-128, or 0 under a ReLU) */
static inline int8_t tk_out8(int32_t t, int32_t lo) {
    t = TK_SSAT8(t);
    return (int8_t)(t < lo ? lo : t);
}

#ifndef TK_CONV_TAPS
#define TK_CONV_TAPS 1 /* ops.py: conv_paths (which of the two conv kernels a program uses) */
#endif
#ifndef TK_CONV_GATHER
#define TK_CONV_GATHER 1
#endif
#ifndef TK_TAPS_FULL
#define TK_TAPS_FULL 1 /* full (not depthwise) convs may take the tap kernel: ops.py, plan_conv_paths */
#endif
#if TK_CONV_TAPS
/* a padded row of the tap kernel's buffer: `len` bytes (a multiple of 4), zeros but for input row `src` (wd bytes,
   none when 0) at `px`: the words outside the row zeroed, then the row copied a word at a time */
static inline void tk_pad_row(int8_t *d, int32_t len, const int8_t *src, int32_t wd, int32_t px) {
    uint32_t *z = (uint32_t *)(void *)d, *const ze = z + (len >> 2);
    do *z++ = 0u; while (z < ze);
    if (!src) return;
    d += px;
    for (; wd >= 4; wd -= 4, d += 4, src += 4) tk_wr32(d, tk_rd32(src));
    for (; wd > 0; wd--) *d++ = *src++;
}

#if defined(__GNUC__)
#define TK_CTZ(m) __builtin_ctz(m)
#else
static inline int32_t tk_ctz(uint32_t m) {
    int32_t k = 0;
    while (!(m & 1u)) { m >>= 1; k++; }
    return k;
}
#define TK_CTZ(m) tk_ctz(m)
#endif

/* the offsets tab[k] of the taps k whose bit 2 (k - k0) is set in m, appended to out */
static inline int16_t *tk_tap_list(uint32_t m, const int16_t *tab, int16_t *out) {
    while (m) {
        *out++ = tab[TK_CTZ(m) >> 1];
        m &= m - 1u;
    }
    return out;
}

/* sums of 8 output pixels at `base` (stride sx: 1 or 2) over the +1 taps [pos, pend) and -1 taps [neg, nend), as
   halfword pairs q[i] = (pixel 2i, pixel 2i + 1) */
static inline void tk_tap_sums(const int8_t *base, const int16_t *pos, const int16_t *pend, const int16_t *neg,
                               const int16_t *nend, int32_t sx, int32_t *q) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (sx == 1) { /* a0 = (0, 2), a1 = (1, 3), a2 = (4, 6), a3 = (5, 7) */
        for (; pos < pend; pos++) {
            const int8_t *b = base + *pos;
            const uint32_t v = tk_rd32(b), u = tk_rd32(b + 4);
            a0 = TK_SADD16(a0, TK_SXTB16(v));
            a1 = TK_SADD16(a1, TK_SXTB16_ROR8(v));
            a2 = TK_SADD16(a2, TK_SXTB16(u));
            a3 = TK_SADD16(a3, TK_SXTB16_ROR8(u));
        }
        for (; neg < nend; neg++) {
            const int8_t *b = base + *neg;
            const uint32_t v = tk_rd32(b), u = tk_rd32(b + 4);
            a0 = TK_SSUB16(a0, TK_SXTB16(v));
            a1 = TK_SSUB16(a1, TK_SXTB16_ROR8(v));
            a2 = TK_SSUB16(a2, TK_SXTB16(u));
            a3 = TK_SSUB16(a3, TK_SXTB16_ROR8(u));
        }
        q[0] = TK_PKHBT(a0, a1);
        q[1] = TK_PKHTB(a1, a0);
        q[2] = TK_PKHBT(a2, a3);
        q[3] = TK_PKHTB(a3, a2);
        return;
    }
    for (; pos < pend; pos++) { /* stride 2: word i holds pixels 2i, 2i + 1 at bytes 0 and 2 */
        const int8_t *b = base + *pos;
        a0 = TK_SADD16(a0, TK_SXTB16(tk_rd32(b)));
        a1 = TK_SADD16(a1, TK_SXTB16(tk_rd32(b + 4)));
        a2 = TK_SADD16(a2, TK_SXTB16(tk_rd32(b + 8)));
        a3 = TK_SADD16(a3, TK_SXTB16(tk_rd32(b + 12)));
    }
    for (; neg < nend; neg++) {
        const int8_t *b = base + *neg;
        a0 = TK_SSUB16(a0, TK_SXTB16(tk_rd32(b)));
        a1 = TK_SSUB16(a1, TK_SXTB16(tk_rd32(b + 4)));
        a2 = TK_SSUB16(a2, TK_SXTB16(tk_rd32(b + 8)));
        a3 = TK_SSUB16(a3, TK_SXTB16(tk_rd32(b + 12)));
    }
    q[0] = a0;
    q[1] = a1;
    q[2] = a2;
    q[3] = a3;
}

/* the tap kernel (tk_taps_ok): per output row and group, the cin_g x kh input rows it reads copied into `buf`
   with their zero padding (whole words, so no pixel needs a bounds test); per output channel its non-zero taps
   as two offset lists (+1 and -1) into that buffer, then 8 output pixels at a time as halfword pairs of sums
   (|sum| <= 128 * 32 fits): per tap one word load per 4 pixels (stride 1; two with stride 2) and SXTB16 /
   SADD16 or SSUB16. The last pass's extra pixels read zeros and are not stored. Writes int8 only. */
TK_KERNEL TK_NOINLINE void tk_conv_taps(const tk_conv_simd_t *p, const int8_t *x, int8_t *buf, int8_t *y8,
                                        int32_t oy0, int32_t oy1) {
    const int32_t kh = p->kh, kw = p->kw, h = p->h, wd = p->wd, sx = p->sx, px = p->px;
    const int32_t cin_g = p->cin_g, cout_g = p->cout_g, kb = p->kbytes, groups = p->cout / cout_g;
    const int32_t in_rows = p->in_rows, ow = p->ow, hw = in_rows * wd, ohw = p->out_rows * ow, taps = cin_g * kh * kw;
    const int32_t stride = TK_DW_STRIDE(ow, sx, kw), sh = p->rq.sh, lo = p->rq.lo, hi = p->rq.hi;
    const int32_t full = cout_g / 4 * 4; /* rows of a group stored interleaved by four */
    const uint32_t e = p->rq.e[0];
    int16_t tab[TK_DW_TAPS], plus[TK_DW_TAPS], minus[TK_DW_TAPS];
    (void)hi;
    for (int32_t k = 0, r = 0, q = 0; k < taps; k++) {
        tab[k] = (int16_t)(r * stride + q);
        if (++q == kw) { q = 0; r++; }
    }
    for (int32_t oy = oy0; oy < oy1; oy++) {
        const int32_t iy0 = oy * p->sy - p->py, r0 = ((iy0 % in_rows) + in_rows) % in_rows;
        int8_t *const yrow = y8 + (oy % p->out_rows) * ow;
        for (int32_t g = 0; g < groups; g++) {
            const int8_t *xg = x + g * cin_g * hw;
            int8_t *d = buf;
            for (int32_t ci = 0; ci < cin_g; ci++, xg += hw) {
                for (int32_t ky = 0, iy = iy0, r = r0; ky < kh; ky++, iy++, d += stride) {
                    tk_pad_row(d, stride, (uint32_t)iy < (uint32_t)h ? xg + r * wd : 0, wd, px);
                    r = r + 1 == in_rows ? 0 : r + 1;
                }
            }
            for (int32_t j = 0; j < cout_g; j++) {
                const int32_t c = g * cout_g + j;
                const uint8_t *w = p->w + (j < full ? (c - (j & 3)) * kb + (j & 3) : c * kb);
                int16_t *pe = plus, *ne = minus;
                for (int32_t k0 = 0; k0 < taps; k0 += 16) {
                    const uint32_t v = tk_codes16(w, j < full ? 4 : 1, k0, taps);
                    pe = tk_tap_list(v & ~(v >> 1) & 0x55555555u, tab + k0, pe);
                    ne = tk_tap_list(v & (v >> 1) & 0x55555555u, tab + k0, ne);
                }
                const tk_ch_t ch = tk_ch(&p->rq, c);
                int8_t *yp = yrow + c * ohw;
                for (int32_t ox = 0; ox < ow; ox += 8) {
                    int32_t q[4];
                    tk_tap_sums(buf + ox * sx, plus, pe, minus, ne, sx, q);
                    const int32_t k = ow - ox < 8 ? ow - ox : 8;
                    for (int32_t r = 0; r < k; r += 2, yp += 2) {
                        const int32_t v = q[r >> 1];
                        yp[0] = tk_out8(tk_req(&ch, (int16_t)v, e, sh), lo);
                        if (r + 1 < k) yp[1] = tk_out8(tk_req(&ch, v >> 16, e, sh), lo);
                    }
                }
            }
        }
    }
}

/* the tap kernel takes convs of at most TK_DW_TAPS taps per output with stride 1 or 2 whose buffer offsets fit
   an int16: depthwise ones, and (TK_TAPS_FULL) others with rows of 16 outputs or more (narrower ones gather,
   ops.py: _tap_rows) */
static inline int32_t tk_taps_ok(const tk_conv_simd_t *p) {
    const int32_t rows = p->cin_g * p->kh;
    return rows * p->kw <= TK_DW_TAPS && p->sx <= 2 && rows * TK_DW_STRIDE(p->ow, p->sx, p->kw) <= 32767
           && p->rq.hi == 127
           && ((p->cin_g == 1 && p->cout_g == 1) || (TK_TAPS_FULL && p->ow >= 16));
}

#endif /* TK_CONV_TAPS */

#if TK_CONV_GATHER
/* the receptive field of one output pixel (one group) into c: (ci, ky, kx) order, padding as zeros; iy0, ix0
   its top-left input position, r0 the stored row of iy0 (rows are a ring of in_rows) */
static inline void tk_field(const tk_conv_simd_t *p, const int8_t *xg, int8_t *c, int32_t iy0, int32_t r0,
                            int32_t ix0, int32_t inside) {
    const int32_t kh = p->kh, kw = p->kw, h = p->h, wd = p->wd, in_rows = p->in_rows, hw = in_rows * wd;
    /* whole words when they stay inside the input row: up to 3 bytes more are written (col has 4 spare), and
       the next kernel row overwrites them */
    const int32_t words = inside && ix0 + ((kw + 3) & ~3) <= wd ? (kw + 3) >> 2 : 0;
    for (int32_t ci = 0; ci < p->cin_g; ci++, xg += hw) {
        for (int32_t ky = 0, iy = iy0, r = r0; ky < kh; ky++, iy++, r = r + 1 == in_rows ? 0 : r + 1) {
            if ((uint32_t)iy >= (uint32_t)h) {
                for (int32_t kx = 0; kx < kw; kx++) *c++ = 0;
                continue;
            }
            const int8_t *row = xg + r * wd;
            if (words) {
                for (int32_t q = 0; q < words; q++) tk_wr32(c + 4 * q, tk_rd32(row + ix0 + 4 * q));
                c += kw;
            } else {
                for (int32_t kx = 0, ix = ix0; kx < kw; kx++, ix++) *c++ = (uint32_t)ix < (uint32_t)wd ? row[ix] : 0;
            }
        }
    }
}

/* output rows [oy0, oy1), one pixel at a time: its receptive field (per group) gathered into `col` (padding
   as zeros; a 1x1 kernel reads one byte per input channel), then every output channel of the group is a dot
   product with it, four channels at a time, requantised with the layer's parameters held in locals.
   Input row iy lives at row iy % in_rows of its plane, output row oy at oy % out_rows: a conv whose only
   reader is the next conv keeps just the rows that one still needs (a ring), filled as it goes. */
TK_KERNEL TK_NOINLINE void tk_conv_gen(const tk_conv_simd_t *p, const int8_t *x, int8_t *col, int8_t *y8,
                                       int32_t *y32, int32_t oy0, int32_t oy1) {
    const int32_t cin_g = p->cin_g, cout_g = p->cout_g, kb = p->kbytes, wd = p->wd, ow = p->ow, sx = p->sx;
    const int32_t hw = p->in_rows * wd, ohw = p->out_rows * ow, taps = cin_g * p->kh * p->kw;
    const int32_t n = kb * TK_TRITS_PER_BYTE, groups = p->cout / cout_g, sh = p->rq.sh, lo = p->rq.lo, hi = p->rq.hi;
    const int32_t pw = p->kh == 1 && p->kw == 1, bs = p->rq.bs;
    const int16_t *const rm = p->rq.m, *const rb = p->rq.b;
    const uint32_t e = p->rq.e[0];
    for (int32_t i = taps; i < n; i++) col[i] = 0; /* the last byte's padding trits */
    for (int32_t oy = oy0; oy < oy1; oy++) {
        const int32_t iy0 = oy * p->sy - p->py, r0 = ((iy0 % p->in_rows) + p->in_rows) % p->in_rows;
        const int32_t row_in = (uint32_t)iy0 < (uint32_t)p->h;
        int32_t pix = (oy % p->out_rows) * ow;
        for (int32_t ox = 0, ix0 = -p->px; ox < ow; ox++, pix++, ix0 += sx) {
            const int32_t inside = ix0 >= 0 && ix0 + p->kw <= wd;
            for (int32_t g = 0; g < groups; g++) {
                const int8_t *xg = x + g * cin_g * hw;
                if (pw && inside && row_in) {
                    const int8_t *src = xg + r0 * wd + ix0;
                    for (int32_t ci = 0; ci < cin_g; ci++, src += hw) col[ci] = *src;
                } else {
                    tk_field(p, xg, col, iy0, r0, ix0, inside);
                }
                const int32_t end = (g + 1) * cout_g;
                for (int32_t co = g * cout_g; co < end;) {
                    int32_t s[4];
                    const int32_t k = tk_rows(p->w + co * kb, end - co, kb, col, n, s);
                    if (!y32 && hi == 127) {
                        int8_t *yp = y8 + co * ohw + pix;
                        for (int32_t r = 0; r < k; r++, co++, yp += ohw) {
                            const int32_t b = (int32_t)((uint32_t)(int32_t)rb[co] << bs);
                            *yp = tk_out8(tk_fin(tk_term_add(s[r], rm[co], e, b), sh), lo);
                        }
                    } else {
                        for (int32_t r = 0; r < k; r++, co++) {
                            const int32_t t = tk_rq(&p->rq, co, s[r]);
                            if (y32) y32[co * ohw + pix] = t;
                            else y8[co * ohw + pix] = (int8_t)tk_clamp(t, lo, hi);
                        }
                    }
                }
            }
        }
    }
}

#endif /* TK_CONV_GATHER */

TK_KERNEL void tk_conv_simd(const tk_conv_simd_t *p, const int8_t *x, int8_t *col, int8_t *y8, int32_t *y32,
                            int32_t oy0, int32_t oy1) {
#if TK_CONV_TAPS
    if (!y32 && tk_taps_ok(p)) {
        tk_conv_taps(p, x, col, y8, oy0, oy1);
        return;
    }
#endif
#if TK_CONV_GATHER
    tk_conv_gen(p, x, col, y8, y32, oy0, oy1);
#endif
}

typedef struct {
    const tk_conv_simd_t *p; const int8_t *x; int8_t *y; /* y: the stage's ring (0 for the last stage) */
} tk_stage_t;

/* the stage of a chain whose next row is made now: the last one as soon as the rows it reads exist, otherwise the
   highest stage whose reader is waiting for it (tk_chain, tk_chain_pool and tk_chain_dense share this schedule) */
static inline int32_t tk_chain_next(const tk_stage_t *s, int32_t n, const int32_t *done) {
    int32_t j = n - 1;
    for (; j > 0; j--) {
        const tk_conv_simd_t *p = s[j].p;
        int32_t need = done[j] * p->sy - p->py + p->kh;
        if (need > p->h) need = p->h;
        if (done[j - 1] >= need) break;
    }
    return j;
}

/* a chain of convs, each the only reader of the one before, row by row: the last stage's next row is made as
   soon as the rows it reads exist; otherwise the highest stage whose next row can be made makes it. So each
   ring holds just the rows its reader needs at once, and every row is computed once. */
TK_KERNEL void tk_chain(const tk_stage_t *s, int32_t n, int32_t *done, int8_t *col, int8_t *y8, int32_t *y32) {
    for (int32_t j = 0; j < n; j++) done[j] = 0;
    while (done[n - 1] < s[n - 1].p->oh) {
        const int32_t j = tk_chain_next(s, n, done);
        tk_conv_simd(s[j].p, s[j].x, col, j == n - 1 ? y8 : s[j].y, j == n - 1 ? y32 : 0, done[j], done[j] + 1);
        done[j]++;
    }
}
""",
}


# ------------------------------------------------------------------ a conv chain streamed into a pooling
# (its own section: the chain's scheduling as tk_chain, its last conv's rows consumed as soon as they are made)
SIMD_KERNELS["pool_stream"] = r"""
/* one input row (channel stride p->wd) into the accumulators of the pool windows that hold it: a sum (average,
   padding counts as zero) or the largest value (max), over the same real inputs tk_pool reads */
static void tk_pool_row(const tk_pool_t *p, int32_t is_max, const int8_t *row, int32_t iy, int32_t *acc) {
    int32_t oy0 = iy + p->py - p->kh + 1, oy1 = (iy + p->py) / p->sy + 1;
    oy0 = oy0 <= 0 ? 0 : (oy0 + p->sy - 1) / p->sy;
    if (oy1 > p->oh) oy1 = p->oh;
    for (int32_t c = 0; c < p->c; c++, row += p->wd) {
        for (int32_t oy = oy0; oy < oy1; oy++) {
            int32_t *a = acc + (c * p->oh + oy) * p->ow;
            for (int32_t ox = 0; ox < p->ow; ox++) {
                int32_t v = a[ox];
                for (int32_t kx = 0; kx < p->kw; kx++) {
                    const int32_t ix = ox * p->sx + kx - p->px;
                    if ((uint32_t)ix >= (uint32_t)p->wd) continue;
                    if (is_max) { if (row[ix] > v) v = row[ix]; }
                    else v += row[ix];
                }
                a[ox] = v;
            }
        }
    }
}

/* a chain of convs whose last one's only reader is a pooling: the last conv makes its rows one at a time into a
   ring of one row (its y), each added into the pool's int32 accumulators; the pool's output is then made from
   them as tk_pool makes it from the stored plane (so only the accumulators, not the conv's output, are kept) */
TK_KERNEL void tk_chain_pool(const tk_stage_t *s, int32_t n, int32_t *done, int8_t *col, const tk_pool_t *pool,
                             int32_t is_max, int32_t *acc, int8_t *y8, int32_t *y32) {
    const int32_t len = pool->c * pool->oh * pool->ow;
    for (int32_t i = 0; i < len; i++) acc[i] = is_max ? -128 : 0;
    for (int32_t j = 0; j < n; j++) done[j] = 0;
    while (done[n - 1] < s[n - 1].p->oh) {
        const int32_t j = tk_chain_next(s, n, done);
        tk_conv_simd(s[j].p, s[j].x, col, s[j].y, 0, done[j], done[j] + 1);
        if (j == n - 1) tk_pool_row(pool, is_max, s[j].y, done[j], acc);
        done[j]++;
    }
    for (int32_t i = 0; i < len; i++) {
        if (is_max) tk_put(y8, y32, i, acc[i], pool->rq.lo, pool->rq.hi);
        else tk_put(y8, y32, i, tk_rq(&pool->rq, 0, acc[i]), pool->rq.lo, pool->rq.hi);
    }
}
"""

# ------------------------------------------------------------------ a conv chain streamed into a dense layer
SIMD_KERNELS["dense_stream"] = r"""
/* a chain of convs whose last one's only reader is a dense layer (through a flatten): each row the last conv
   makes (C x W values, a ring of one row) is dotted with that row's columns of the dense weights (stored per
   conv row, p->row_bytes a row of them) and added to the int32 sums; the outputs are then requantised as
   tk_dense_simd does. Only the sums, not the conv's output, are kept. */
TK_KERNEL void tk_chain_dense(const tk_stage_t *s, int32_t n, int32_t *done, int8_t *col, const tk_dense_simd_t *p,
                              int32_t *acc, int8_t *y8, int32_t *y32) {
    for (int32_t o = 0; o < p->rows; o++) acc[o] = 0;
    for (int32_t j = 0; j < n; j++) done[j] = 0;
    while (done[n - 1] < s[n - 1].p->oh) {
        const int32_t j = tk_chain_next(s, n, done);
        tk_conv_simd(s[j].p, s[j].x, col, s[j].y, 0, done[j], done[j] + 1);
        if (j == n - 1) {
            const uint8_t *w = p->w + done[j] * p->rows * p->row_bytes;
            for (int32_t o = 0; o < p->rows;) {
                int32_t sum[4];
                const int32_t k = tk_rows(w + o * p->row_bytes, p->rows - o, p->row_bytes, s[j].y, p->cols, sum);
                for (int32_t r = 0; r < k; r++, o++) acc[o] += sum[r];
            }
        }
        done[j]++;
    }
    for (int32_t o = 0; o < p->rows; o++)
        tk_put(y8, y32, o, tk_rq(&p->rq, o, acc[o]), p->rq.lo, p->rq.hi);
}
"""
NEEDS = {"pool_stream": ("pool", "conv_simd"), "dense_stream": ("dense_simd", "conv_simd")}  # what a kernel uses


ROWS = r"""
#ifndef TK_ROWS_OF_FOUR
/* the last one to three rows of a block of rows: one copy of tk_dot's code, however many kernels call it */
static TK_NOINLINE void tk_dot_rest(const uint8_t *w0, const uint8_t *w1, const int8_t *x, int32_t n, int32_t *s) {
    tk_dot(w0, w1, x, n, s);
}

/* the dot products of rows [0, rows) of w with x, TK_BLOCK (or two, or one) rows at a time: s gets k sums */
static inline int32_t tk_rows(const uint8_t *w, int32_t left, int32_t rb, const int8_t *x, int32_t n, int32_t *s) {
    s[0] = s[1] = 0;
#if TK_BLOCK == 4
    if (left >= 4) {
        tk_dot4(w, x, n, s);
        return 4;
    }
#endif
    tk_dot_rest(w, left >= 2 ? w + rb : 0, x, n, s);
    return left >= 2 ? 2 : 1;
}
#endif
"""


def simd_common(packing: str) -> str:
    """The SIMD helpers, the weight-byte table of `packing` and its dot products."""
    return SIMD_COMMON + lut_c(packing) + DOT[packing] + ROWS


def lut_c(packing: str) -> str:
    """The decode tables: per weight byte, its trits as int16 halfword pairs (t0, t2) in tk_trits_a, (t1, t3) in
    tk_trits_b (2-bit); base-3: the pairs in tk_trits[0] and tk_trits[1] (243 words each), the fifth trit in the
    byte table tk_trits_c."""
    from .packing import byte_trits

    trits = byte_trits(packing).astype(np.int64)  # (entries, trits per byte)
    a = (trits[:, 0] & 0xFFFF) | ((trits[:, 2] & 0xFFFF) << 16)
    b = (trits[:, 1] & 0xFFFF) | ((trits[:, 3] & 0xFFFF) << 16)
    out = f"\n/* weight byte -> trits ({len(trits)} entries) */\n"
    a, b = (np.where(v >= 1 << 31, v - (1 << 32), v) for v in (a, b))
    if trits.shape[1] == 4:
        return out + _table("int32_t", "tk_trits_a", a) + _table("int32_t", "tk_trits_b", b)
    # base-3: the 243 valid bytes only; a and b as two rows of one table (one address serves both), the fifth
    # trit as bytes (2,187 bytes in all)
    rows = (a, b)
    body = ",\n    ".join("{" + _table("", "", r).split("{", 1)[1].rsplit("}", 1)[0].strip() + "}" for r in rows)
    return (out + f"static const int32_t tk_trits[2][{len(trits)}] = {{\n    {body}\n}};\n"
            + _table("int8_t", "tk_trits_c", trits[:, 4]))


def _table(ctype: str, name: str, values) -> str:
    items = [v if isinstance(v, str) else str(int(v)) for v in values]
    lines = [", ".join(items[i:i + 12]) for i in range(0, len(items), 12)]
    return f"static const {ctype} {name}[{len(items)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


# the kernels of export/c/handlers.py: elementwise functions of int8 activations, products, strided copies
KERNELS |= {
    "lut": r"""
/* any elementwise function of an int8 activation: a 256-entry table indexed by the value's byte */
TK_KERNEL void tk_lut(int32_t len, const int8_t *x, const int8_t *table, int8_t *y) {
    for (int32_t i = 0; i < len; i++) y[i] = table[(uint8_t)x[i]];
}
""",
    "mul": r"""
typedef struct {
    int32_t d[4], sa[4], sb[4]; tk_rq_t rq; /* output dims; each input's stride per output axis (0: broadcast) */
} tk_mul_t;

/* y = a * b, broadcasting (the squeeze-excitation gate): the int16 product requantised with one gain */
TK_KERNEL void tk_mul(const tk_mul_t *p, const int8_t *a, const int8_t *b, int8_t *y8, int32_t *y32) {
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < p->d[0]; i0++)
        for (int32_t i1 = 0; i1 < p->d[1]; i1++)
            for (int32_t i2 = 0; i2 < p->d[2]; i2++)
                for (int32_t i3 = 0; i3 < p->d[3]; i3++, o++) {
                    int32_t v = (int32_t)a[i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3]]
                              * (int32_t)b[i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3]];
                    tk_put(y8, y32, o, tk_rq(&p->rq, 0, v), p->rq.lo, p->rq.hi);
                }
}
""",
    "gather": r"""
typedef struct {
    int32_t rank, len, off; int32_t d[6], s[6]; /* output dims, input stride per output axis */
} tk_gather_t;

/* a strided copy (transpose, slice): walks the output in order, the input by its strides */
TK_KERNEL void tk_gather(const tk_gather_t *p, const int8_t *x, int8_t *y) {
    int32_t idx[6] = {0, 0, 0, 0, 0, 0}, src = p->off;
    for (int32_t o = 0; o < p->len; o++) {
        y[o] = x[src];
        for (int32_t k = p->rank - 1; k >= 0; k--) {
            src += p->s[k];
            if (++idx[k] < p->d[k]) break;
            src -= p->s[k] * p->d[k];
            idx[k] = 0;
        }
    }
}
""",
}
