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

__all__ = ["COMMON", "KERNELS"]

COMMON = r"""
#if defined(__GNUC__) && !defined(__clang__)
#define TK_KERNEL static __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TK_KERNEL static
#endif

/* hm(v << e, m): v times a gain m * 2^e / 2^31, rounded; |v << e| < 2^31 by construction */
static inline int32_t tk_term(int32_t v, int32_t m, uint32_t e) {
    int64_t a = (int64_t)(int32_t)((uint32_t)v << e);
    return (int32_t)((a * m + ((int64_t)1 << 30)) >> 31);
}

/* drop the sh fraction bits, rounding half up */
static inline int32_t tk_fin(int32_t t, int32_t sh) {
    return (t + ((1 << sh) >> 1)) >> sh;
}

static inline void tk_put(int8_t *y8, int32_t *y32, int32_t i, int32_t v, int32_t lo, int32_t hi) {
    if (y32) y32[i] = v;
    else y8[i] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

typedef struct {
    const int32_t *m; const uint8_t *e; const int32_t *b; int32_t sh, lo, hi;
} tk_rq_t;
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
        tk_put(y8, y32, o, tk_fin(tk_term(acc, p->rq.m[o], p->rq.e[o]) + p->rq.b[o], p->rq.sh), p->rq.lo, p->rq.hi);
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
        const int32_t m = p->rq.m[co], b = p->rq.b[co];
        const uint32_t e = p->rq.e[co];
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
                else tk_put(y8, y32, o, tk_fin(tk_term(acc, p->rq.m[0], p->rq.e[0]) + p->rq.b[0], p->rq.sh),
                            p->rq.lo, p->rq.hi);
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
        const int32_t m = p->rq.m[c], b = p->rq.b[c];
        const uint32_t e = p->rq.e[c];
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
        int32_t t = p->rq.b[0];
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
        tk_put(y8, y32, i, tk_fin(tk_term(x[i], p->rq.m[0], p->rq.e[0]) + p->rq.b[0], p->rq.sh), p->rq.lo, p->rq.hi);
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
