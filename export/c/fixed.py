"""The fixed-point arithmetic of the C export: how a real gain becomes an integer multiplier, and the numpy
twin of the three C helpers every requantising kernel uses (bit for bit).

Every requantisation computes, per output element,

    t = sum_k hm(v_k << e_k, m_k) + (b << bs)   hm(a, m) = (a * m) >> 16   (48-bit product: one SMLAWB)
    y = t >> sh, then clamped to int8 (or kept as int32 for the scores)

so that y ~ sum_k v_k * g_k / s_out + beta / s_out, with g_k the real value of one unit of the integer
input v_k, beta the real bias and s_out the real value of one output LSB. The bias b << bs holds the final
rounding too (beta / s_out * 2^sh + 2^(sh-1), and 1/2 per term for hm's rounding down, rounded to a multiple
of 2^bs): y rounds half up with one shift. `sh` (fraction bits kept until the final rounding) is the largest
value for which the static worst case (every int8 input at +-128) stays below 2^29, so no int32 can overflow
for any input, seen or not. A gain g becomes m * 2^e / 2^16 with |m| < 2^15: the only multiply left in the
integer path is hm, one per output (and per input for add and concat). One e serves all channels of a term
(that of the largest gain, so |m| < 2^15 for all); the worst case therefore takes the largest gain times the
largest input bound, and |v << e| <= 4 * that < 2^31.

Flash: the per-channel parameters are stored lean, 4 bytes per output channel: m as int16, one e per term
shared by its channels (a channel 2^d times smaller than the largest keeps 15 - d bits of precision; d <= 3
in the MLPerf Tiny models), and the bias as int16 b with one shift bs per requantisation, the smallest that
fits every channel's bias (its rounding error, 2^(bs-1) units of t, stays below 2^-15 of the bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ternkit.core.errors import UnsupportedError

__all__ = ["Requant", "choose", "scores_scale", "term", "finish", "store", "QMIN", "QMAX", "INT32", "M_BITS",
           "B_BITS"]

QMIN, QMAX = -128, 127
INT32 = (-(1 << 31), (1 << 31) - 1)
LIMIT = 1 << 29  # |t| stays below this for every possible input (and |v << e| below 2^31)
SH_MAX = 16
SCORE_RANGE = 1 << 28  # the scores' worst case is scaled to this (29 bits of room, one spare)
M_BITS = 16  # a stored multiplier: int16
B_BITS = 16  # a stored bias: int16, times 2^bs


@dataclass
class Requant:
    """Integer parameters of one requantisation: m, e of shape (terms, channels), m as stored (int16), e the
    same for every channel of a term (C stores e[:, 0]); b per channel: the bias the arithmetic adds,
    b_stored << bs (`b_stored` is what the C arrays hold)."""

    m: np.ndarray
    e: np.ndarray
    b: np.ndarray
    sh: int
    lo: int
    hi: int
    scores: bool
    bs: int = 0

    @property
    def b_stored(self) -> np.ndarray:
        """The int16 biases of the C arrays (b is a multiple of 2^bs by construction)."""
        return self.b >> self.bs


def _worst(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray) -> float:
    """A bound of |real output| for any input: sum_k max_c V_k |g_k| + max_c |beta|. Each term's largest
    gain times its largest bound, not the largest product per channel: one exponent serves all channels
    of a term, so the channel of the largest gain sets how far every channel's v is shifted."""
    total = float(np.abs(np.asarray(beta, np.float64)).max(initial=0.0))
    for g, v in zip(gains, bounds, strict=True):
        total += float(np.abs(np.asarray(g, np.float64)).max(initial=0.0)) * float(
            np.asarray(v, np.float64).max(initial=0.0))
    return total


def scores_scale(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray) -> float:
    """The real value of one score LSB: the worst case fills 28 bits, so the scores keep every bit the
    integer sums have and no rounding of the last layer is coarser than its accumulator."""
    worst = _worst(gains, bounds, beta)
    return worst / SCORE_RANGE if worst > 0 else 1.0


def _fixed(rho: float) -> tuple[int, int]:
    """(m, e) with m * 2^e / 2^16 = rho (rounded), |m| < 2^15, e >= 0 as small as possible. A gain below
    2^-17 rounds to 0 (its channel adds less than 2^-17 units of t per unit of v)."""
    e = 0
    limit = 1 << (M_BITS - 1)
    while True:
        m = int(round(rho * 2.0 ** (M_BITS - e)))
        if abs(m) < limit:
            return m, e
        e += 1


def _shared_exponent(rho: np.ndarray) -> tuple[np.ndarray, int]:
    """(m per channel, one e) with m * 2^e / 2^16 = rho (rounded), |m| < 2^15: the e of the largest gain, so
    one exponent serves every channel (a channel 2^d times smaller keeps 15 - d bits)."""
    e = _fixed(float(np.abs(rho).max(initial=0.0)))[1]
    limit = 1 << (M_BITS - 1)
    while True:
        m = np.round(rho * 2.0 ** (M_BITS - e)).astype(np.int64)
        if np.abs(m).max(initial=0) < limit:
            return m, e
        e += 1


def _lean_bias(b: np.ndarray) -> tuple[np.ndarray, int]:
    """(b rounded to a multiple of 2^bs, bs): the smallest bs >= 0 for which every b / 2^bs fits an int16."""
    limit = (1 << (B_BITS - 1)) - 1
    bs = 0
    while np.abs(np.round(b / 2.0 ** bs)).max(initial=0) > limit:
        bs += 1
    return np.round(b / 2.0 ** bs).astype(np.int64) << bs, bs


def choose(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray, s_out: float,
           lo: int = QMIN, hi: int = QMAX, scores: bool = False, where: str = "") -> Requant:
    """Parameters for output scale `s_out`. `gains[k]`: real value of one unit of term k per channel (or one
    for all); `bounds[k]`: the largest |v_k| the integer path can hand it (static); `beta`: real bias per
    channel (zeros for none). Channels broadcast: every array has 1 or C entries."""
    channels = max([np.size(g) for g in gains] + [np.size(beta)])
    # in output LSBs, with the rounding slack: 1/2 per hm and the final rounding, 2^-15 relative per int16
    # multiplier and for the int16 bias
    worst = _worst(gains, bounds, beta) / s_out * (1 + 2.0 ** (2 - M_BITS)) + len(gains) + 1
    if worst > LIMIT:
        raise UnsupportedError(f"{where}: the output range needs more than 30 bits in fixed point")
    sh = min(SH_MAX, int(math.floor(math.log2(LIMIT / worst))))
    m = np.zeros((len(gains), channels), np.int64)
    e = np.zeros((len(gains), channels), np.int64)
    for k, g in enumerate(gains):
        rho = np.broadcast_to(np.asarray(g, np.float64).reshape(-1), (channels,)) / s_out * 2.0 ** sh
        m[k], e[k] = _shared_exponent(rho)
    beta = np.broadcast_to(np.asarray(beta, np.float64).reshape(-1), (channels,))
    # the final rounding's half LSB included, and half a unit of t per term (hm rounds down)
    b, bs = _lean_bias(beta / s_out * 2.0 ** sh + ((1 << sh) >> 1) + len(gains) / 2)
    return Requant(m, e, b, sh, lo, hi, scores, bs)


# ------------------------------------------------------------------------ the numpy twin of the C helpers
def term(v: np.ndarray, m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """tk_term: hm(v << e, m) = ((v << e) * m) >> 16 (SMLAWB); m and e broadcast against v (int64 throughout)."""
    return ((np.asarray(v, np.int64) << np.asarray(e, np.int64)) * np.asarray(m, np.int64)) >> 16


def finish(t: np.ndarray, sh: int) -> np.ndarray:
    """tk_fin: drop the sh fraction bits (arithmetic shift; the bias in t holds the half LSB that rounds)."""
    return np.asarray(t, np.int64) >> sh


def store(v: np.ndarray, rq: Requant) -> np.ndarray:
    """What the kernel writes: the int32 scores as they are, int8 activations clamped to [lo, hi]."""
    return v if rq.scores else np.clip(v, rq.lo, rq.hi)
