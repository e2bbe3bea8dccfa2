"""The fixed-point arithmetic of the C export: how a real gain becomes an integer multiplier, and the numpy
twin of the three C helpers every requantising kernel uses (bit for bit).

Every requantisation computes, per output element,

    t = sum_k hm(v_k << e_k, m_k) + b          hm(a, m) = (a * m + 2^30) >> 31   (64-bit product)
    y = (t + 2^(sh-1)) >> sh, then clamped to int8 (or kept as int32 for the scores)

so that y ~ sum_k v_k * g_k / s_out + beta / s_out, with g_k the real value of one unit of the integer
input v_k, beta the real bias and s_out the real value of one output LSB. `sh` (fraction bits kept until
the final rounding) is the largest value for which the static worst case (every int8 input at +-128) stays
below 2^30, so no int32 can overflow for any input, seen or not. A gain g becomes m * 2^e / 2^31 with
|m| < 2^31 and the smallest e >= 0: the only multiply left in the integer path is hm, one per output (and
per input for add and concat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ternkit.core.errors import UnsupportedError

__all__ = ["Requant", "choose", "scores_scale", "term", "finish", "store", "QMIN", "QMAX", "INT32"]

QMIN, QMAX = -128, 127
INT32 = (-(1 << 31), (1 << 31) - 1)
LIMIT = 1 << 30  # |t| stays below this for every possible input
SH_MAX = 16
SCORE_RANGE = 1 << 29  # the scores' worst case is scaled to this (30 bits of room, one spare)


@dataclass
class Requant:
    """Integer parameters of one requantisation: m, e of shape (terms, channels), b per channel."""

    m: np.ndarray
    e: np.ndarray
    b: np.ndarray
    sh: int
    lo: int
    hi: int
    scores: bool


def _worst(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray) -> float:
    """Largest |real output| any input can produce: sum_k V_k |g_k| + |beta|, maximised over channels."""
    total = np.abs(np.asarray(beta, np.float64)).reshape(-1)
    for g, v in zip(gains, bounds, strict=True):
        total = total + np.abs(np.asarray(g, np.float64)).reshape(-1) * np.asarray(v, np.float64).reshape(-1)
    return float(total.max()) if total.size else 0.0


def scores_scale(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray) -> float:
    """The real value of one score LSB: the worst case fills 29 bits, so the scores keep every bit the
    integer sums have and no rounding of the last layer is coarser than its accumulator."""
    worst = _worst(gains, bounds, beta)
    return worst / SCORE_RANGE if worst > 0 else 1.0


def _fixed(rho: float) -> tuple[int, int]:
    """(m, e) with m * 2^e / 2^31 = rho (rounded), |m| < 2^31, e >= 0 as small as possible."""
    e = 0
    while True:
        m = int(round(rho * 2.0 ** (31 - e)))
        if abs(m) < (1 << 31):
            return m, e
        e += 1


def choose(gains: list[np.ndarray], bounds: list[np.ndarray], beta: np.ndarray, s_out: float,
           lo: int = QMIN, hi: int = QMAX, scores: bool = False, where: str = "") -> Requant:
    """Parameters for output scale `s_out`. `gains[k]`: real value of one unit of term k per channel (or one
    for all); `bounds[k]`: the largest |v_k| the integer path can hand it (static); `beta`: real bias per
    channel (zeros for none). Channels broadcast: every array has 1 or C entries."""
    channels = max([np.size(g) for g in gains] + [np.size(beta)])
    worst = _worst(gains, bounds, beta) / s_out + len(gains) + 1  # in output LSBs, with the rounding slack
    if worst > LIMIT:
        raise UnsupportedError(f"{where}: the output range needs more than 30 bits in fixed point")
    sh = min(SH_MAX, int(math.floor(math.log2(LIMIT / worst))))
    m = np.zeros((len(gains), channels), np.int64)
    e = np.zeros((len(gains), channels), np.int64)
    for k, g in enumerate(gains):
        g = np.broadcast_to(np.asarray(g, np.float64).reshape(-1), (channels,))
        for c in range(channels):
            m[k, c], e[k, c] = _fixed(g[c] / s_out * 2.0 ** sh)
    b = np.round(np.broadcast_to(np.asarray(beta, np.float64).reshape(-1), (channels,)) / s_out * 2.0 ** sh)
    return Requant(m, e, b.astype(np.int64), sh, lo, hi, scores)


# ------------------------------------------------------------------------ the numpy twin of the C helpers
def term(v: np.ndarray, m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """tk_term: hm(v << e, m); m and e broadcast against v (int64 throughout)."""
    return ((np.asarray(v, np.int64) << np.asarray(e, np.int64)) * np.asarray(m, np.int64) + (1 << 30)) >> 31


def finish(t: np.ndarray, sh: int) -> np.ndarray:
    """tk_fin: round half up, then drop the sh fraction bits (arithmetic shift)."""
    return (np.asarray(t, np.int64) + ((1 << sh) >> 1)) >> sh


def store(v: np.ndarray, rq: Requant) -> np.ndarray:
    """What the kernel writes: the int32 scores as they are, int8 activations clamped to [lo, hi]."""
    return v if rq.scores else np.clip(v, rq.lo, rq.hi)
