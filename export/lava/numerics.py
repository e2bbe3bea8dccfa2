"""A plan's populations -> Lava parameters: integer weights, exponents, shifts, thresholds and biases (fixed
point, what Loihi 2 runs) or floats, for sigma-delta or integrate-and-fire neurons. Units come from
calibration data, in topological order, so every population knows its sources' units.

- One synapse group into a population: a group with one scale keeps 2-bit (ternary) weights (trit * 2^7 with
  num_weight_bits=2 and the exponent undoing the 2^7); per-channel scales become a per-row mantissa
  m_i = round(s_i / max|s| * 127 / levels) (8-bit weights) and the shared scale goes into the unit.
- Several groups (add, concat, relays) share one accumulator, so each group's mantissas are relative to a
  common unit U0 times 2^k_g (its own exponent): Dense applies k_g through `weight_exp`; Lava's Conv model
  ignores weight_exp, so there 2^k_g is folded into the stored weight (chosen so the sums fit Conv's 24 bits).
- A right shift r per population (Dense `weight_exp`, else the neuron's `in_shift`) keeps graded activations
  within `act_bits`, and grows until every reader's sums Σ|w|·|a| stay below half of Lava's accumulator.
- Bias: a 13-bit signed mantissa with a shared exponent (Loihi's format), per neuron where it varies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ternkit.core.ops.conv2d import expand_groups

from .emulate import conv_fan_out, conv_int
from .plan import Group, Plan, Population

__all__ = ["int_weights", "Quantiser", "PROC", "ACC_CAP", "BIAS_MANT_BITS", "MAX_LAVA_GROUPS"]

PROC = {"dense": "lava.proc.dense.process.Dense", "conv": "lava.proc.conv.process.Conv",
        "sigma-delta": "ternkit.export.lava.procs.processes.SigmaDeltaReset",
        "if": "ternkit.export.lava.procs.processes.IntegrateFire",
        "readout": "ternkit.export.lava.procs.processes.Readout",
        "source": "ternkit.export.lava.procs.processes.SampleSource"}
BIAS_MANT_BITS = 13  # Loihi compartment bias mantissa (signed)
ACC_CAP = {"conv": 2 ** 22, "dense": 2 ** 30}  # half of Lava's Conv 24-bit clamp and Dense int32, as margin
MAX_LAVA_GROUPS = 127  # Lava's Conv stores `groups` in 8 signed bits: more is expanded to a block-diagonal kernel


def int_weights(q: np.ndarray, s: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    """(integer weights q*m, per-row mantissa m, real value of one weight LSB, weight bits, low bits Lava drops)
    for one group on its own."""
    if s.size == 1 or np.all(s == s[0]):  # one scale: the synapse keeps 2-bit (ternary) weights
        m, delta = np.ones(q.shape[0], np.int64), float(s[0])
        nbits = max(2, math.ceil(math.log2(2 * levels + 1)))
        if delta < 0:
            m, delta = -m, -delta
    else:  # per-channel scales: a per-row mantissa, 8-bit weights
        smax = float(np.abs(s).max())
        m = np.round(s / smax * (127 // levels)).astype(np.int64)
        delta, nbits = smax / (127 // levels), 8
    lsb = 1 if nbits == 8 else 9 - nbits  # Lava drops 8 - nbits + 1 low bits of mixed-sign Dense weights
    return q * m.reshape((-1,) + (1,) * (q.ndim - 1)), m, delta, nbits, lsb


def _levels(g: Group) -> int:
    return max(1, int(np.abs(g.q).max()))




@dataclass
class _GroupInt:
    w: np.ndarray  # integer (or float) weights, torch layout, before any Lava layout change
    m: np.ndarray | None
    k: int  # exponent relative to the population's unit
    nbits: int | None
    lsb: int


def _sum_bound(g: Group, w_abs: np.ndarray, a_abs: np.ndarray, src_shape) -> float:
    if a_abs.size == 0:
        return 0.0
    if g.kind == "conv":
        return float(conv_int(a_abs.reshape((len(a_abs),) + tuple(src_shape)), w_abs, g.stride, g.padding,
                              g.groups).max())
    return float((a_abs.reshape(len(a_abs), -1) @ w_abs.T).max())


class Quantiser:
    """Parameters of every population, in order; holds the calibration activations it needs."""

    def __init__(self, plan: Plan, *, fixed: bool, neuron: str, timesteps: int, act_bits: int,
                 real: list[np.ndarray], percentile: float, src_int: np.ndarray | None, src_unit: float,
                 src_split: bool, src_layout: str):
        self.plan, self.fixed, self.neuron, self.T, self.act_bits = plan, fixed, neuron, timesteps, act_bits
        self.real, self.percentile = real, percentile
        self.ints: dict[int, np.ndarray] = {0: src_int} if src_int is not None else {}
        self.units: dict[int, float] = {0: src_unit}  # sigma-delta: value per integer; IF: value per spike
        self.split, self.src_layout = src_split, src_layout
        self.readers: dict[int, list[tuple[Population, Group]]] = {}
        for p in plan.populations[1:]:
            for g in p.groups:
                self.readers.setdefault(g.src, []).append((p, g))

    # -- per group --------------------------------------------------------------------------------------------
    def _group_ints(self, p: Population, coeff_unit: list[float]) -> tuple[list[_GroupInt], float]:
        """Integer weights of p's groups and the population's pre-shift unit U0 (see module doc)."""
        gs = p.groups
        if len(gs) == 1:
            w, m, delta, nbits, lsb = int_weights(gs[0].q, gs[0].s, _levels(gs[0]))
            return [_GroupInt(w, m, 0, nbits, lsb)], \
                delta * coeff_unit[0]
        nat = [float(np.abs(g.s).max()) * u / (127 // _levels(g)) or 1.0 for g, u in zip(gs, coeff_unit, strict=True)]
        u0 = min(nat)
        conv = gs[0].kind == "conv"
        while True:
            out = []
            for g, u, n in zip(gs, coeff_unit, nat, strict=True):
                k = max(0, math.ceil(math.log2(n / u0) - 1e-9))
                m = np.round(g.s * u / (u0 * 2 ** k)).astype(np.int64)
                w = g.q * m.reshape((-1,) + (1,) * (g.q.ndim - 1))
                out.append(_GroupInt(w << k if conv else w, m, 0 if conv else k, 8, 1))
            if not conv or not self.fixed or self.neuron == "if":
                return out, u0
            bound = sum(_sum_bound(g, np.abs(gi.w), np.abs(self.ints[g.src]), self.plan.populations[g.src].shape)
                        for g, gi in zip(gs, out, strict=True))
            if bound < ACC_CAP["conv"] or all(math.log2(n / u0) <= 0 for n in nat):
                return out, u0
            u0 *= 2

    def _reader_fits(self, k: int, a: np.ndarray) -> bool:
        """Do the sums of every group that reads population k stay below their share of the accumulator?"""
        for p, g in self.readers.get(k, []):
            if len(p.groups) == 1 and (p.activation == "readout" or self.neuron == "if" or np.all(g.s == g.s[0])):
                w, *_, lsb = int_weights(g.q, g.s, _levels(g))
                w_abs = np.abs(w) * (1 if g.kind == "conv" else 1 << lsb)
            else:  # per-row or multi-group mantissas are at most 127 / levels (x2 stored for Dense)
                w_abs = np.abs(g.q) * (127 // _levels(g)) * (1 if g.kind == "conv" else 2)
            if _sum_bound(g, w_abs, np.abs(a), self.plan.populations[k].shape) >= ACC_CAP[g.kind] / len(p.groups):
                return False
        return True

    # -- sigma-delta --------------------------------------------------------------------------------------------
    def _row_ints(self, p: Population, coeff_unit: list[float]) -> tuple[list[_GroupInt], float, np.ndarray]:
        """Per-row mantissas: row i's weights relative to its own largest coefficient (7 bits for every row,
        not only the largest), and the row exponent e_i that the neuron's per-neuron `in_shift` undoes.
        Returns the groups' integer weights, the population's pre-shift unit and e."""
        coeff = [g.s * u for g, u in zip(p.groups, coeff_unit, strict=True)]
        used = [np.abs(g.q).reshape(len(g.q), -1).max(1) for g in p.groups]  # 0: a row without synapses
        top = np.max([np.abs(c) * lv for c, lv in zip(coeff, used, strict=True)], axis=0) / 127
        top = np.where(top > 0, top, top.max() or 1.0)
        umax = float(top.max())
        e = np.floor(np.log2(umax / top) + 1e-9).astype(np.int64).clip(0, 16)
        row_unit = umax / 2.0 ** e
        out = []
        for g, c in zip(p.groups, coeff, strict=True):
            m = np.round(c / row_unit).astype(np.int64)
            out.append(_GroupInt(g.q * m.reshape((-1,) + (1,) * (g.q.ndim - 1)), m, 0, 8, 1))
        return out, umax, e

    def sigma_delta(self, k: int, p: Population) -> tuple[dict[str, Any], list[_GroupInt]]:
        last = p.activation == "readout"
        if not self.fixed:
            gis = [_GroupInt(g.q * g.s.reshape((-1,) + (1,) * (g.q.ndim - 1)), None, 0, None, 0) for g in p.groups]
            return {"vth": 0.0, "in_shift": 0, "bias": p.bias, "bias_exp": 0, "unit": 1.0}, gis
        units = [self.units[g.src] for g in p.groups]
        uniform = len(p.groups) == 1 and bool(np.all(p.groups[0].s == p.groups[0].s[0]))
        if last or uniform:  # the readout has no input shift; one scale keeps 2-bit weights (see _group_ints)
            gis, u0 = self._group_ints(p, units)
            e = np.zeros(p.shape[0], np.int64)
        else:
            gis, u0, e = self._row_ints(p, units)
        n = len(self.ints[0])
        rows = e.reshape((1, -1) + (1,) * (len(p.shape) - 1))
        raw = [self._raw(g, gi, n, p) for g, gi in zip(p.groups, gis, strict=True)]  # exact, before shifts
        total = sum(r * 2.0 ** gi.k for r, gi in zip(raw, gis, strict=True)) / 2.0 ** rows
        peak = max(float(np.abs(total).max()), float(np.abs(p.bias).max()) / u0, 1.0)
        r = max(0, math.ceil(math.log2(peak)) - (self.act_bits - 1))
        conv = p.groups[0].kind == "conv"
        while True:
            u_out = u0 * (1 << r)
            b_int = np.round(p.bias / u_out).astype(np.int64)
            bexp = 0 if last else max(0, int(np.abs(b_int).max()).bit_length() - (BIAS_MANT_BITS - 1))
            b_mant = np.round(b_int / (1 << bexp)).astype(np.int64)
            if conv:  # Lava's Conv cannot shift: the neuron shifts by r + e_i
                acc = np.right_shift(sum(raw), r + rows)
            else:  # each Dense shifts its sum by its weight_exp (k_g - r), the neuron by e_i
                acc = np.right_shift(sum(_shift(x, r - gi.k) for x, gi in zip(raw, gis, strict=True)), rows)
            pre = acc + (b_mant << bexp)[None]
            a = pre if last or p.activation == "linear" else np.maximum(pre, 0)
            if last or self._reader_fits(k, a):
                break
            r += 1
        self.ints[k], self.units[k] = a, u_out
        for gi in gis:
            gi.k -= r if not conv else 0  # Dense: weight_exp = k_g - r - lsb
        shift = e + (r if conv else 0)
        in_shift = int(shift[0]) if np.all(shift == shift[0]) else shift.tolist()
        return {"vth": 1, "in_shift": in_shift, "bias": b_mant, "bias_exp": bexp, "unit": u_out}, gis

    def _raw(self, g: Group, gi: _GroupInt, n: int, p: Population) -> np.ndarray:
        src = self.ints[g.src]
        from .plan import group_forward

        return group_forward(g, src, self.plan.populations[g.src].shape, gi.w).reshape((n,) + p.shape)

    # -- integrate-and-fire ------------------------------------------------------------------------------------
    def integrate_fire(self, k: int, p: Population) -> tuple[dict[str, Any], list[_GroupInt]]:
        last = p.activation == "readout"
        lam = float(np.percentile(self.real[k], self.percentile)) if not last else 1.0
        lam = lam if lam > 0 else 1.0
        self.units[k] = lam
        lam_src = [self.units[g.src] for g in p.groups]
        if not self.fixed:
            gis = [_GroupInt(g.q * g.s.reshape((-1,) + (1,) * (g.q.ndim - 1)) * u, None, 0, None, 0)
                   for g, u in zip(p.groups, lam_src, strict=True)]
            return {"vth": lam, "in_shift": 0, "bias": p.bias * self.T if last else p.bias, "bias_exp": 0,
                    "unit": 1.0, "lam": lam}, gis
        gis, u0 = self._group_ints(p, lam_src)
        theta = lam / u0
        f = max(0, 14 - math.floor(math.log2(theta))) if not last else 8
        beta = np.round(p.bias / u0 * (1 << f)).astype(np.int64)
        if last:  # the readout adds the bias of all `timesteps` steps once
            b_mant, bexp, vth = beta * self.T, 0, 1
        else:
            bexp = max(0, int(np.abs(beta).max()).bit_length() - (BIAS_MANT_BITS - 1))
            b_mant, vth = np.round(beta / (1 << bexp)).astype(np.int64), max(1, round(theta * (1 << f)))
        conv = p.groups[0].kind == "conv"
        for gi in gis:
            gi.k += 0 if conv else f
        return {"vth": vth, "in_shift": -f if conv else 0, "bias": b_mant, "bias_exp": bexp,
                "unit": u0 / (1 << f), "lam": lam}, gis

    # -- Lava layouts ----------------------------------------------------------------------------------------
    def synapse(self, g: Group, gi: _GroupInt, src_lava: list[int], msg_bits: int) -> dict[str, Any]:
        """The synapse process entry: weights in Lava's layout (split +/- source channels included)."""
        w, groups = gi.w, g.groups
        split = self.split and g.src == 0
        src_shape = self.plan.populations[g.src].shape
        if g.kind == "conv":
            if groups > MAX_LAVA_GROUPS or (split and groups > 1):
                w, groups = expand_groups(w, groups), 1
            fan = conv_fan_out(w, src_shape, g.stride, g.padding).transpose(2, 1, 0).reshape(-1)
            stored = w.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :]
            if split:
                stored = np.concatenate([stored, -stored], axis=-1)
                fan = np.concatenate([fan.reshape(src_lava[:-1] + [-1])] * 2, -1).reshape(-1)
            exp = 0
        else:
            idx, sign = self.lava_order(g.src)
            stored = w[:, idx] * sign[None]
            if self.fixed:
                stored = stored << gi.lsb
            fan = (stored != 0).sum(0)
            exp = gi.k - gi.lsb if self.fixed else 0
        syn: dict[str, Any] = {"process": PROC[g.kind], "op": g.kind, "shape": list(stored.shape),
                               "weights": np.ascontiguousarray(stored).tolist(), "weight_exp": int(exp),
                               "num_weight_bits": int(gi.nbits) if self.fixed else None,
                               "num_message_bits": int(msg_bits), "fan_out": np.asarray(fan, np.int64).tolist(),
                               "weight_mantissa": None if gi.m is None else gi.m.tolist()}
        if g.kind == "conv":
            syn.update(input_shape=list(src_lava), stride=[g.stride[1], g.stride[0]],
                       padding=[g.padding[1], g.padding[0]], groups=int(groups))
        return syn

    def lava_order(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For each element of population k's Lava output (flattened), its torch flat index and sign."""
        shape = self.plan.populations[k].shape
        n = int(np.prod(shape))
        xyc = len(shape) == 3 and (k > 0 or self.src_layout == "xyc")
        idx = np.arange(n).reshape(shape).transpose(2, 1, 0).reshape(-1) if xyc else np.arange(n)
        if not (self.split and k == 0):
            return idx, np.ones(n, np.int64)
        if xyc:  # (X, Y, 2C): channel c < C is x+, c >= C is x-
            c = shape[0]
            grid = np.arange(n).reshape(shape).transpose(2, 1, 0)  # (X, Y, C) torch indices
            idx2 = np.concatenate([grid, grid], axis=-1).reshape(-1)
            sign = np.concatenate([np.ones(grid.shape, np.int64), -np.ones(grid.shape, np.int64)], -1).reshape(-1)
            del c
            return idx2, sign
        return np.concatenate([idx, idx]), np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])


def _shift(x: np.ndarray, s: int) -> np.ndarray:
    return np.right_shift(x, s) if s > 0 else np.left_shift(x, -s) if s < 0 else x
