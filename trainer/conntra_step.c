/* CoNNTrA's step for one CPU weight tensor in one pass, and Adam for continuous tensors (trainer/native.py
   builds and loads this).

   The torch form (trainer/optim.py) makes about a dozen element-wise passes per step over every discrete weight
   (Adam's moments, the proposal, its threshold test, the range check, the move, the reset of M). Here the
   moments, the proposal and the move of each weight are one loop body: the weight tensors are read and written
   once per step, as a float Adam step does.

   Order of work for one tensor of n weights:
   1. the positions that set the threshold (all of them for small tensors, else fixed chunks of neighbours):
      moments updated, proposal P kept in pbuf, score in sbuf;
   2. t = just above the (j+1)-th largest score (a heap select, no sort);
   3. every other position: moments updated and the move decided in the same loop body; the sampled ones
      reuse their kept P.
   Arithmetic is float32 as in torch's Adam; the proposal's bias corrections are passed in (a layer-wide
   constant). Returns the number of weights moved. */

#include <math.h>
#include <stdint.h>

typedef struct {
    float beta1, w1, beta2, w2;  /* M <- beta1 M + w1 g;  V <- beta2 V + w2 g^2 */
    float step_size;        /* 1 / (1 - beta1^step) */
    float inv_bc2_sqrt;     /* 1 / sqrt(1 - beta2^step) */
    float eps;
    float levels;           /* L: weights in {-L..L} */
    float bonus;            /* a move onto 0 needs only t / (1 + bonus) */
} Coef;

static void sift_down(float *h, int64_t size, int64_t i) {
    float x = h[i];
    for (int64_t child; (child = 2 * i + 1) < size; i = child) {
        if (child + 1 < size && h[child + 1] < h[child]) child++;
        if (!(h[child] < x)) break;
        h[i] = h[child];
    }
    h[i] = x;
}

/* the size-th largest of a[0..n) with a min-heap of `size` in a's front: one well-predicted comparison per
   element (few beat the heap's least), where a quickselect mispredicts about half of its comparisons */
static float heap_select(float *a, int64_t n, int64_t size) {
    for (int64_t i = size / 2 - 1; i >= 0; i--) sift_down(a, size, i);
    for (int64_t i = size; i < n; i++) {
        if (a[i] > a[0]) {
            a[0] = a[i];
            sift_down(a, size, 0);
        }
    }
    return a[0];
}

/* the (k+1)-th largest of a[0..n) (k 0-based, k < n); a is reordered. A budget above half the sample looks for
   the (n-k)-th smallest instead (the largest of the negated values), so the heap never exceeds n/2 */
static float kth_largest(float *a, int64_t n, int64_t k) {
    if (k + 1 <= n / 2) return heap_select(a, n, k + 1);
    for (int64_t i = 0; i < n; i++) a[i] = -a[i];
    return -heap_select(a, n, n - k);
}

/* x86-64 Linux: one copy of the hot loop per vector width, the CPU's picked when the library loads (ifunc) */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define TK_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), noinline))
#else
#define TK_CLONES
#endif

/* the hot loop: positions [lo, hi) that are not in the sample; branch-free so that the compiler vectorises it
   (every ternary below is a select) */
TK_CLONES static int64_t sweep(const Coef *c, float t, int64_t lo, int64_t hi, float *restrict q, float *restrict m,
                     float *restrict v, const float *restrict g) {
    const float beta1 = c->beta1, w1 = c->w1, beta2 = c->beta2, w2 = c->w2;
    const float step_size = c->step_size, ib = c->inv_bc2_sqrt;
    const float eps = c->eps, levels = c->levels, boost = 1.0f + c->bonus;
    float moved = 0.0f;  /* a float count vectorises; exact up to 2^24, the block size of sweep_all */
    for (int64_t i = lo; i < hi; i++) {
        float gi = g[i], mi = m[i], qi = q[i];
        float mm = beta1 * mi + w1 * gi;
        float vv = beta2 * v[i] + w2 * gi * gi;
        v[i] = vv;
        float denom = sqrtf(vv) * ib + eps;
        float sign_p = mm > 0.0f ? -1.0f : 1.0f;  /* P = -M / denom */
        float a = step_size * fabsf(mm);
        a = (qi * sign_p < 0.0f) & (fabsf(qi) == 1.0f) ? a * boost : a;  /* the zero bonus (1 without one) */
        float d = a >= t * denom ? sign_p : 0.0f;  /* |P| = a / denom reaches t */
        d = qi * d >= levels ? 0.0f : d;           /* the move would leave {-L..L} */
        q[i] = qi + d;
        m[i] = d != 0.0f ? 0.0f : mm;
        moved += d != 0.0f ? 1.0f : 0.0f;
    }
    return (int64_t)moved;
}

/* sweep in blocks of 2^24, so that the float count of one block stays exact */
static int64_t sweep_all(const Coef *c, float t, int64_t lo, int64_t hi, float *q, float *m, float *v,
                         const float *g) {
    int64_t moved = 0;
    for (int64_t b = lo; b < hi; b += (int64_t)1 << 24) {
        int64_t e = hi - b > ((int64_t)1 << 24) ? b + ((int64_t)1 << 24) : hi;
        moved += sweep(c, t, b, e, q, m, v, g);
    }
    return moved;
}

/* the move of the sample's positions [lo, lo+len) from their kept P (M already updated) */
TK_CLONES static int64_t settle(const Coef *c, float t, int64_t lo, int64_t len, float *restrict q, float *restrict m,
                      const float *restrict pbuf) {
    const float levels = c->levels, boost = 1.0f + c->bonus;
    float moved = 0.0f;  /* len <= 8192: exact */
    for (int64_t i = 0; i < len; i++) {
        float p = pbuf[i], qi = q[lo + i];
        float sign_p = p > 0.0f ? 1.0f : -1.0f, a = fabsf(p);
        a = (qi * sign_p < 0.0f) & (fabsf(qi) == 1.0f) ? a * boost : a;
        float d = a >= t ? sign_p : 0.0f;
        d = qi * d >= levels ? 0.0f : d;
        q[lo + i] = qi + d;
        m[lo + i] = d != 0.0f ? 0.0f : m[lo + i];
        moved += d != 0.0f ? 1.0f : 0.0f;
    }
    return (int64_t)moved;
}

/* the sample's positions [lo, lo+len): moments, proposal kept, score (branch-free, like sweep) */
TK_CLONES static void sample(const Coef *c, int64_t lo, int64_t len, float *restrict q, float *restrict m,
                             float *restrict v, const float *restrict g, float *restrict pbuf, float *restrict sbuf) {
    const float beta1 = c->beta1, w1 = c->w1, beta2 = c->beta2, w2 = c->w2;
    const float step_size = c->step_size, ib = c->inv_bc2_sqrt;
    const float eps = c->eps, levels = c->levels, boost = 1.0f + c->bonus;
    for (int64_t i = 0; i < len; i++) {
        float gi = g[lo + i], mi = m[lo + i], qi = q[lo + i];
        float mm = beta1 * mi + w1 * gi;
        float vv = beta2 * v[lo + i] + w2 * gi * gi;
        v[lo + i] = vv;
        m[lo + i] = mm;
        float p = -(step_size * mm / (sqrtf(vv) * ib + eps));
        float qp = qi * p, sc = fabsf(p);
        sc = (qp > 0.0f) & (fabsf(qi) == levels) ? 0.0f : sc;  /* the move would leave {-L..L} */
        sc = (qp < 0.0f) & (fabsf(qi) == 1.0f) ? sc * boost : sc;
        pbuf[i] = p;
        sbuf[i] = sc;
    }
}

int64_t tk_conntra_step(int64_t n, float *q, float *m, float *v, const float *g,
                        const int64_t *chunks, int64_t nchunks, int64_t chunk, int64_t j,
                        float beta1, float w1, float beta2, float w2, float step_size, float inv_bc2_sqrt, float eps,
                        float levels, float bonus, float above, float floor_,
                        float *pbuf, float *sbuf, float *t_out) {
    const Coef c = {beta1, w1, beta2, w2, step_size, inv_bc2_sqrt, eps, levels, bonus};
    /* 1. the sample: chunks[] are sorted chunk indices; positions chunks[i]*chunk .. +chunk */
    for (int64_t ci = 0; ci < nchunks; ci++)
        sample(&c, chunks[ci] * chunk, chunk, q, m, v, g, pbuf + ci * chunk, sbuf + ci * chunk);
    int64_t s = nchunks * chunk;
    /* 2. the threshold (j < 0: no budget this step, nothing moves) */
    float t = j < 0 ? INFINITY : (j < s ? kth_largest(sbuf, s, j) : 0.0f) * above;
    if (!(t >= floor_)) t = floor_;
    *t_out = t;
    /* 3. the move: the rest in one pass each, the sample from its kept P */
    int64_t moved = 0, pos = 0;
    for (int64_t ci = 0; ci <= nchunks; ci++) {
        int64_t start = ci < nchunks ? chunks[ci] * chunk : n;
        moved += sweep_all(&c, t, pos, start, q, m, v, g);
        if (ci == nchunks) break;
        moved += settle(&c, t, start, chunk, q, m, pbuf + ci * chunk);
        pos = start + chunk;
    }
    return moved;
}

/* Adam on one continuous tensor (scales, biases, BatchNorm, float layers): torch's Adam (L2 weight decay, no
   amsgrad), float32, in one pass. For the small tensors of a ternary model a call through torch's optimizer
   machinery costs far more than this arithmetic. */
TK_CLONES void tk_adam_step(int64_t n, float *restrict p, const float *restrict g, float *restrict m,
                            float *restrict v, float beta1, float w1, float beta2, float w2, float step_size,
                            float inv_bc2_sqrt, float eps, float weight_decay) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        float mm = beta1 * m[i] + w1 * gi;
        float vv = beta2 * v[i] + w2 * gi * gi;
        m[i] = mm;
        v[i] = vv;
        p[i] -= step_size * mm / (sqrtf(vv) * inv_bc2_sqrt + eps);
    }
}

/* Many tensors in one call: on a model of many small layers (a DS-CNN), one call per tensor from Python cost
   more than their arithmetic. Per tensor i: its size, pointers, sample and budget (tk_conntra_step's), and its
   bias corrections (each tensor counts its own steps). */
void tk_conntra_steps(int64_t count, const int64_t *n, float *const *q, float *const *m, float *const *v,
                      float *const *g, const int64_t *const *chunks, const int64_t *nchunks, const int64_t *chunk,
                      const int64_t *j, const float *step_size, const float *inv_bc2_sqrt, const float *levels,
                      float beta1, float w1, float beta2, float w2, float eps, float bonus, float above,
                      float floor_, float *pbuf, float *sbuf, float *t_out, int64_t *moved) {
    for (int64_t i = 0; i < count; i++)
        moved[i] = tk_conntra_step(n[i], q[i], m[i], v[i], g[i], chunks[i], nchunks[i], chunk[i], j[i], beta1, w1,
                                   beta2, w2, step_size[i], inv_bc2_sqrt[i], eps, levels[i], bonus, above, floor_,
                                   pbuf, sbuf, &t_out[i]);
}

void tk_adam_steps(int64_t count, const int64_t *n, float *const *p, float *const *g, float *const *m,
                   float *const *v, const float *step_size, const float *inv_bc2_sqrt, float beta1, float w1,
                   float beta2, float w2, float eps, float weight_decay) {
    for (int64_t i = 0; i < count; i++)
        tk_adam_step(n[i], p[i], g[i], m[i], v[i], beta1, w1, beta2, w2, step_size[i], inv_bc2_sqrt[i], eps,
                     weight_decay);
}
