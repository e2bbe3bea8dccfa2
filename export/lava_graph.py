"""Model artifact -> a versioned, plain-JSON description of the Lava process graph (and back, validated).

The graph is what `lava_sim` builds, parameter for parameter, so the exported file *is* the simulated
network. Per weight layer: a synapse process (Lava `Dense`, or `Conv` for strided convolutions) with integer
weights, weight bits and exponent, and a neuron process (sigma-delta ReLU, integrate-and-fire, or the
readout for the last layer) with thresholds, bias mantissa/exponent and input shift; plus the input encoding.

Fixed point (what Loihi 2 runs), units chosen per layer from calibration data:
- input: graded spikes, round(x_norm / u0) in `in_bits` signed bits (sigma-delta); or rate-coded unit spikes
  with rates x_norm / max (integrate-and-fire; a signed input is split into +/- channels with weights [W, -W]).
  Before a dense first layer the mean is folded into its bias, so x_norm is x / std: zero stays zero.
- weights: a ternary layer with one scale keeps 2-bit weights (trit * 2^7 with num_weight_bits=2 and the
  exponent undoing the 2^7: Lava drops the low bits of mixed-sign weights below 8 - bits + 1). Per-channel
  scales have no place in a ternary synapse, so they become a per-row 7-bit mantissa m_i = round(s_i/max|s|*127/k)
  and the weight is trit * m_i (8-bit weights); the layer's shared scale goes into the units.
- a right shift per layer (weight exponent for Dense, neuron input shift for Conv, whose Lava model ignores
  weight_exp) keeps graded activations within `act_bits`; the bias is a 13-bit mantissa with a shared exponent.
`emulate()` runs the same integer arithmetic in numpy: the Lava run must match it exactly (a test checks).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from ternkit.core.atomic import write_text
from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.model import Conv2d, Dense, Flatten, ReLU, TernaryModel

from .activity import conv_fan_out

__all__ = ["build_graph", "choose_percentile", "PERCENTILES", "save_graph", "load_graph", "validate_graph",
           "encode_inputs", "emulate",
           "GRAPH_FORMAT", "GRAPH_VERSION", "NEURONS"]

GRAPH_FORMAT = "ternkit-lava-graph"
GRAPH_VERSION = 1
NEURONS = ("sigma-delta", "if")
PROC = {"dense": "lava.proc.dense.process.Dense", "conv": "lava.proc.conv.process.Conv",
        "sigma-delta": "ternkit.export.lava_procs.processes.SigmaDeltaReset",
        "if": "ternkit.export.lava_procs.processes.IntegrateFire",
        "readout": "ternkit.export.lava_procs.processes.Readout",
        "source": "ternkit.export.lava_procs.processes.SampleSource"}
BIAS_MANT_BITS = 13  # Loihi compartment bias mantissa (signed)
RATE_DEN = 255  # input rates quantised to 8 bits


# ---------------------------------------------------------------------------------------------- structure
def _stages(model: TernaryModel) -> list[tuple[int, Dense | Conv2d, bool, bool]]:
    """(layer index, weight layer, followed by ReLU, preceded by a Flatten of a conv output) per weight layer;
    raises ArtifactError for layer orders Lava cannot map."""
    out: list[tuple[int, Dense | Conv2d, bool, bool]] = []
    layers, flat_after_conv, seen_flatten = model.layers, False, False
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense | Conv2d):
            if isinstance(layer, Conv2d) and seen_flatten:
                raise ArtifactError(f"layer {i}: a convolution after Flatten cannot be mapped")
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)
            out.append((i, layer, relu, flat_after_conv))
            flat_after_conv = False
        elif isinstance(layer, ReLU):
            if i == 0 or not isinstance(layers[i - 1], Dense | Conv2d):
                raise ArtifactError(f"layer {i}: ReLU must directly follow a dense or conv layer to map to Lava")
        elif isinstance(layer, Flatten):
            flat_after_conv = bool(out) and isinstance(out[-1][1], Conv2d)
            seen_flatten = True
        else:
            raise ArtifactError(f"layer {i}: {type(layer).__name__} has no Lava mapping")
    if not out:
        raise ArtifactError("model has no weight layers")
    for i, _, relu, _ in out[:-1]:
        if not relu:
            raise ArtifactError(f"layer {i}: a hidden weight layer without ReLU cannot be mapped to spiking neurons")
    if out[-1][2]:
        raise ArtifactError(f"layer {out[-1][0]}: the output layer must be linear (no ReLU) for the readout")
    return out


def _xyc_perm(chw: tuple[int, int, int]) -> np.ndarray:
    """perm[f_lava] = torch flat index, for Lava's (X, Y, C) flatten order vs torch's (C, H, W)."""
    return np.arange(int(np.prod(chw))).reshape(chw).transpose(2, 1, 0).reshape(-1)


def _conv_int(a: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Exact cross-correlation (torch semantics) of integer or float arrays: a (N,C,H,W), w (O,C,kh,kw)."""
    n, c, h, wd = a.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    ap = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.lib.stride_tricks.sliding_window_view(ap, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * kh * kw)
    return np.ascontiguousarray((cols @ w.reshape(o, -1).T).transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------- building
def build_graph(model: TernaryModel, calib_x: np.ndarray, *, neuron: str = "sigma-delta", timesteps: int = 32,
                fixed: bool = True, in_bits: int = 8, act_bits: int = 16, percentile: float = 100.0,
                source: str = "") -> dict[str, Any]:
    """Map `model` to a Lava graph description; `calib_x` (raw samples, ideally training data) sets the units
    (fixed point) and, for integrate-and-fire, the data-based thresholds (max activation per layer)."""
    if neuron not in NEURONS:
        raise OptionError(f"unknown neuron model {neuron!r}; choose one of {', '.join(NEURONS)}")
    if neuron == "sigma-delta":
        timesteps = 1
    if timesteps < 1 or timesteps > 100000:
        raise OptionError(f"timesteps must be in 1..100000, got {timesteps}")
    if not 0 < percentile <= 100:
        raise OptionError(f"percentile must be in (0, 100], got {percentile}")
    if not 2 <= in_bits <= 16 or not 8 <= act_bits <= 24:
        raise OptionError("in_bits must be in 2..16 and act_bits in 8..24")
    model.validate()
    if model.kind != "ternary":
        raise ArtifactError("a float model has no integer weights to map to Lava; export a ternary model")
    stages = _stages(model)
    calib_x = np.asarray(calib_x, np.float32)
    if calib_x.ndim < 2 or calib_x.shape[1:] != tuple(model.input.shape) or len(calib_x) == 0:
        raise OptionError(f"calibration data must have samples of shape {tuple(model.input.shape)}")
    acts = model.activations(calib_x)
    first_conv = isinstance(stages[0][1], Conv2d)
    # Fold the mean into the first layer's bias (dense only: a padded conv would see the shift at its borders),
    # so the source sends x / std: zero pixels stay zero (sparse input events) and rates are non-negative.
    fold = not first_conv and bool(np.any(model.input.mean != 0))
    mean_term = np.broadcast_to(model.input.mean / model.input.std, in_shape_of(model)).reshape(-1)
    x_norm = (calib_x / model.input.std).astype(np.float32) if fold else model.input.normalise(calib_x)
    in_shape = tuple(int(s) for s in model.input.shape)
    if first_conv:
        lava_in = [in_shape[2], in_shape[1], in_shape[0]]
    else:
        lava_in = [int(np.prod(in_shape))]
    L = len(stages)
    window = timesteps  # steps per sample; samples are pipelined, the readout lags L steps behind the source
    graph: dict[str, Any] = {
        "format": GRAPH_FORMAT, "version": GRAPH_VERSION, "numerics": "fixed_pt" if fixed else "floating_pt",
        "neuron": neuron, "timesteps": timesteps, "window": window, "latency": L, "labels": list(model.labels),
        "source": source, "calibration_samples": int(len(calib_x)),
        "percentile": float(percentile) if neuron == "if" else None, "layers": [],
    }
    xmax = float(np.abs(x_norm).max()) or 1.0
    qmax = (1 << (in_bits - 1)) - 1
    split = neuron == "if" and float(x_norm.min()) < 0
    inp: dict[str, Any] = {"process": PROC["source"], "shape": list(in_shape), "lava_shape": lava_in,
                           "layout": "xyc" if first_conv else "flat",
                           "mean": model.input.mean.astype(np.float64).reshape(-1).tolist(),
                           "std": model.input.std.astype(np.float64).reshape(-1).tolist(),
                           "stats_shape": list(model.input.mean.shape), "mean_in_bias": fold}
    if neuron == "sigma-delta":
        u_in = xmax / qmax if fixed else 1.0
        inp.update(encoding="graded", bits=in_bits if fixed else None, unit=u_in, split_sign=False)
    else:
        inp.update(encoding="rate", lam=xmax, rate_den=RATE_DEN if fixed else 1, split_sign=split, unit=xmax)
        if split:
            lava_in = [2 * int(np.prod(lava_in))] if not first_conv else lava_in[:2] + [2 * lava_in[2]]
            inp["lava_shape"] = lava_in
        u_in = xmax  # value carried by one input spike
    graph["input"] = inp

    # torch-layout integer emulation of the fixed-point path, to pick shifts from real magnitudes
    a = np.clip(np.round(x_norm / u_in), -qmax, qmax).astype(np.int64) if neuron == "sigma-delta" and fixed else None
    shapes = model.shapes()
    shape_in: tuple[int, ...] = in_shape
    lam_prev = xmax
    levels = max(1, int(model.levels))
    for k, (idx, layer, relu, flat_after_conv) in enumerate(stages):
        q = layer.weight.astype(np.int64)
        s = layer.scale.astype(np.float64).reshape(-1)
        b = layer.bias.astype(np.float64)
        if k == 0 and fold:
            b = b - s * (q.reshape(len(q), -1) @ mean_term.astype(np.float64))
        out_shape = shapes[idx]
        is_conv = isinstance(layer, Conv2d)
        last = k == L - 1
        rows = (-1,) + (1,) * (q.ndim - 1)
        if fixed:
            wq, m, delta, nbits, lsb = _int_weights(layer, levels)
        else:
            m, delta, nbits, lsb = None, 1.0, None, 0
            wq = q.astype(np.float64) * s.reshape(rows)
        nr: dict[str, Any]
        if neuron == "sigma-delta":
            if fixed:
                acc = _apply(wq, a, layer, shape_in, is_conv)
                unit_pre = delta * u_in
                peak = max(float(np.abs(acc).max()), float(np.abs(b).max()) / unit_pre, 1.0)
                r = max(0, math.ceil(math.log2(peak)) - (act_bits - 1))
                while True:  # grow r until the next layer's synaptic sums fit Lava's accumulator
                    u_out = unit_pre * (1 << r)
                    b_int = np.round(b / u_out).astype(np.int64)
                    bexp = 0 if last else max(0, int(np.abs(b_int).max()).bit_length() - (BIAS_MANT_BITS - 1))
                    b_mant = np.round(b_int / (1 << bexp)).astype(np.int64)
                    pre = np.right_shift(acc, r) + _bcast(b_mant << bexp, acc)
                    a = np.maximum(pre, 0) if relu else pre
                    if last:
                        break
                    bound, cap = _next_sum_bound(stages[k + 1][1], a, out_shape, levels)
                    if bound < cap:
                        break
                    r += max(1, math.ceil(math.log2(bound / cap)))
                nr = {"vth": 1, "in_shift": r if is_conv else 0, "bias_mantissa": b_mant.tolist(), "bias_exp": bexp,
                      "unit": u_out, "phase": k + 1}
                stored, syn_exp = (wq, 0) if is_conv else (wq << lsb, -lsb - r)
                u_in = u_out
            else:
                nr = {"vth": 0.0, "in_shift": 0, "bias_mantissa": b.tolist(), "bias_exp": 0, "unit": 1.0,
                      "phase": k + 1}
                stored, syn_exp = wq, 0
            msg_bits = (in_bits if k == 0 else act_bits) if fixed else 24
        else:  # integrate-and-fire, rate coded; data-based threshold = activation percentile of the layer
            lam = float(np.percentile(acts[idx + 1], percentile)) if relu else 1.0
            lam = lam if lam > 0 else 1.0
            if fixed:
                theta_real = lam / (delta * lam_prev)
                f = max(0, 14 - math.floor(math.log2(theta_real))) if relu else 8
                beta = np.round(b / (delta * lam_prev) * (1 << f)).astype(np.int64)
                if last:  # the readout adds the bias of all `timesteps` steps once
                    b_mant, bexp, vth = beta * timesteps, 0, 1
                else:
                    bexp = max(0, int(np.abs(beta).max()).bit_length() - (BIAS_MANT_BITS - 1))
                    b_mant, vth = np.round(beta / (1 << bexp)).astype(np.int64), max(1, round(theta_real * (1 << f)))
                stored, syn_exp, shift = (wq, 0, -f) if is_conv else (wq << lsb, f - lsb, 0)
                unit = delta * lam_prev / (1 << f)
            else:
                b_mant, bexp, vth = (b * timesteps if last else b), 0, lam
                stored, syn_exp, shift, unit = wq * lam_prev, 0, 0, 1.0
            nr = {"vth": vth if fixed else float(vth), "in_shift": shift,
                  "bias_mantissa": np.asarray(b_mant).tolist(), "bias_exp": bexp, "phase": k + 1,
                  "unit": unit, "lam": lam}
            lam_prev = lam
            msg_bits = 0
        # Lava layouts: conv kernels (O, kX, kY, C) flipped; dense columns in Lava's (X, Y, C) flatten order
        if is_conv:
            stored = stored.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :]
            fan = conv_fan_out(q, shape_in, layer.stride, layer.padding).transpose(2, 1, 0).reshape(-1)
        else:
            if flat_after_conv:
                stored = stored[:, _xyc_perm(_flat_src_shape(model, idx))]
            fan = (stored != 0).sum(0)
        if k == 0 and split:
            stored = np.concatenate([stored, -stored], axis=-1)
            fan = np.concatenate([fan.reshape(lava_in[:-1] + [-1]), fan.reshape(lava_in[:-1] + [-1])], -1).reshape(-1)
        syn: dict[str, Any] = {"process": PROC["conv" if is_conv else "dense"], "shape": list(stored.shape),
                               "weights": np.ascontiguousarray(stored).tolist(), "weight_exp": int(syn_exp),
                               "num_weight_bits": int(nbits) if fixed else None, "num_message_bits": int(msg_bits)}
        if is_conv:
            syn.update(input_shape=list(lava_in) if k == 0 else [shape_in[2], shape_in[1], shape_in[0]],
                       stride=[layer.stride[1], layer.stride[0]], padding=[layer.padding[1], layer.padding[0]])
        kind = "readout" if last else neuron
        nr.update(process=PROC[kind], kind=kind,
                  shape=[out_shape[2], out_shape[1], out_shape[0]] if is_conv else [int(out_shape[0])])
        graph["layers"].append({
            "index": idx, "op": "conv" if is_conv else "dense", "relu": relu, "in_shape": list(shape_in),
            "out_shape": list(out_shape), "fan_out": np.asarray(fan, np.int64).tolist(),
            "dense_macs": int(np.prod(out_shape) * np.prod(q.shape[1:])),
            "weight_mantissa": None if m is None else m.tolist(), "synapse": syn, "neuron": nr})
        if last:
            graph["readout"] = {"unit": float(nr["unit"])}
        shape_in = tuple(int(v) for v in out_shape)
        if k + 1 < L and isinstance(model.layers[stages[k + 1][0] - 1], Flatten):
            shape_in = (int(np.prod(shape_in)),)
    validate_graph(graph)
    return graph


def _int_weights(layer: Dense | Conv2d, levels: int) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    """(integer weights q*m, per-row mantissa m, unit of one weight LSB, weight bits, low bits Lava drops)."""
    q = layer.weight.astype(np.int64)
    s = layer.scale.astype(np.float64).reshape(-1)
    if s.size == 1 or np.all(s == s[0]):  # one scale: the synapse keeps 2-bit (ternary) weights
        m, delta = np.ones(q.shape[0], np.int64), float(s[0])
        nbits = max(2, math.ceil(math.log2(2 * levels + 1)))
    else:  # per-channel scales: a per-row mantissa, 8-bit weights
        smax = float(np.abs(s).max())
        m = np.round(s / smax * (127 // levels)).astype(np.int64)
        delta, nbits = smax / (127 // levels), 8
    lsb = 1 if nbits == 8 else 9 - nbits  # Lava drops 8 - nbits + 1 low bits of mixed-sign Dense weights
    return q * m.reshape((-1,) + (1,) * (q.ndim - 1)), m, delta, nbits, lsb


ACC_CAP = {"conv": 2 ** 22, "dense": 2 ** 30}  # half of Lava's Conv 24-bit clamp and Dense int32, as margin


def _next_sum_bound(nxt: Dense | Conv2d, a: np.ndarray, shape: tuple[int, ...], levels: int) -> tuple[float, int]:
    """Largest sum of |weight| x |input| the next layer forms in Lava's stored units, and its cap."""
    wq, _, _, _, lsb = _int_weights(nxt, levels)
    is_conv = isinstance(nxt, Conv2d)
    w_abs = np.abs(wq) * (1 if is_conv else 1 << lsb)
    bound = float(np.abs(_apply(w_abs, np.abs(a), nxt, shape, is_conv)).max()) if a.size else 0.0
    return bound, ACC_CAP["conv" if is_conv else "dense"]


def in_shape_of(model: TernaryModel) -> tuple[int, ...]:
    return tuple(int(v) for v in model.input.shape)


def _flat_src_shape(model: TernaryModel, idx: int) -> tuple[int, int, int]:
    """Shape (C, H, W) of the conv activation that the Flatten before layer `idx` flattens."""
    return tuple(model.shapes()[idx - 2])  # layers: ..., conv/relu (idx-2), flatten (idx-1), dense (idx)


def _bcast(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (like.ndim - 2))


def _apply(w: np.ndarray, a: np.ndarray, layer: Dense | Conv2d, shape_in, is_conv: bool) -> np.ndarray:
    """Integer synaptic input (torch layouts) of a batch: exact, int64."""
    if is_conv:
        return _conv_int(a.reshape((len(a),) + tuple(shape_in)), w, layer.stride, layer.padding)
    return a.reshape(len(a), -1) @ w.T


PERCENTILES = (100.0, 99.9, 99.5, 99.0, 98.0, 95.0)


def choose_percentile(model: TernaryModel, calib_x: np.ndarray, held_out_x: np.ndarray, timesteps: int,
                      candidates: tuple[float, ...] = PERCENTILES, **kw: Any) -> float:
    """The integrate-and-fire threshold percentile whose graph agrees best with the reference on `held_out_x`
    (data not used for calibration, never test data), scored with the numpy emulation, which is bit-exact
    with Lava. A lower percentile clips the rare large activations but resolves the common ones with fewer
    timesteps; ties go to the higher percentile."""
    if len(held_out_x) == 0:
        raise OptionError("choosing a percentile needs held-out samples")
    ref = model.predict(held_out_x)
    scores = []
    for p in candidates:
        g = build_graph(model, calib_x, neuron="if", timesteps=timesteps, percentile=p, **kw)
        scores.append((float((emulate(g, held_out_x)[0].argmax(1) == ref).mean()), p))
    return max(scores)[1]


# ---------------------------------------------------------------------------------------------- encoding
def encode_inputs(graph: dict[str, Any], x_raw: np.ndarray) -> np.ndarray:
    """Raw samples -> what the source process sends: graded integers (fixed), normalised floats (float), or
    spike-rate numerators in 0..rate_den (rate coding), in Lava's input layout."""
    inp = graph["input"]
    x = np.asarray(x_raw, np.float64)
    if list(x.shape[1:]) != inp["shape"]:
        raise OptionError(f"samples have shape {tuple(x.shape[1:])}, the graph expects {tuple(inp['shape'])}")
    stats = tuple(inp["stats_shape"])
    mean, std = np.asarray(inp["mean"]).reshape(stats), np.asarray(inp["std"]).reshape(stats)
    if inp["mean_in_bias"]:  # the first layer's bias holds -W mean/std
        x = (x / std).astype(np.float32).astype(np.float64)
    else:
        x = ((x - mean) / std).astype(np.float32).astype(np.float64)  # as InputSpec.normalise does, in float32
    fixed = graph["numerics"] == "fixed_pt"
    if inp["encoding"] == "graded":
        if fixed:
            qmax = (1 << (inp["bits"] - 1)) - 1
            x = np.clip(np.round(x / inp["unit"]), -qmax, qmax).astype(np.int64)
    else:
        parts = [np.maximum(x, 0), np.maximum(-x, 0)] if inp["split_sign"] else [x]
        axis = 1  # channel axis (C, H, W) or feature axis
        x = np.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]
        x = np.clip(x / inp["lam"], 0, 1) * inp["rate_den"]
        if fixed:
            x = np.round(x).astype(np.int64)
    if inp["layout"] == "xyc":
        x = x.transpose(0, 3, 2, 1)
    return x.reshape((len(x),) + tuple(inp["lava_shape"]))


# ---------------------------------------------------------------------------------------------- emulation
def emulate(graph: dict[str, Any], x_raw: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """numpy model of the graph's Lava dynamics: (readout values (N, classes), per-layer per-neuron message
    counts summed over the batch, input first). Fixed point: integer-exact for sigma-delta."""
    fixed = graph["numerics"] == "fixed_pt"
    a = encode_inputs(graph, x_raw)
    n = len(a)
    counts: list[np.ndarray] = []
    if graph["neuron"] == "sigma-delta":
        counts.append((a != 0).sum(0).reshape(-1))
        for layer in graph["layers"]:
            acc = _synapse(layer, a, fixed)
            nr = layer["neuron"]
            if fixed:
                acc = _shift(acc, nr["in_shift"])
                bias = np.asarray(nr["bias_mantissa"], np.int64) << nr["bias_exp"]
            else:
                bias = np.asarray(nr["bias_mantissa"])
            pre = acc + _bias_lava(bias, acc)
            if nr["kind"] == "readout":
                return pre.reshape(n, -1), counts
            a = np.maximum(pre, 0)
            counts.append((a != 0).sum(0).reshape(-1))
    T = graph["timesteps"]
    den = graph["input"]["rate_den"]
    x = a
    spikes_t = [((s + 1) * x // den - s * x // den) for s in range(T)]  # input spikes per step
    counts.append(sum(sp for sp in spikes_t).sum(0).reshape(-1))
    for layer in graph["layers"]:
        nr = layer["neuron"]
        bias = (np.asarray(nr["bias_mantissa"], np.int64) << nr["bias_exp"]) if fixed else \
            np.asarray(nr["bias_mantissa"])
        if nr["kind"] == "readout":
            acc = sum(_synapse(layer, sp, fixed) for sp in spikes_t)
            return (acc + _bias_lava(bias, acc)).reshape(n, -1), counts
        v, out = None, []
        for sp in spikes_t:
            cur = _synapse(layer, sp, fixed)
            if fixed:
                cur = _shift(cur, nr["in_shift"])
            v = (0 if v is None else v) + cur + _bias_lava(bias, cur)
            fire = v >= nr["vth"]
            v = v - fire * nr["vth"]
            out.append(fire.astype(np.int64 if fixed else np.float64))
        spikes_t = out
        counts.append(sum(out).sum(0).reshape(-1))
    raise ArtifactError("graph has no readout layer")


def _shift(x: np.ndarray, s: int) -> np.ndarray:
    """Right shift by s (left by -s), as the neuron models apply `in_shift`."""
    return np.right_shift(x, s) if s > 0 else np.left_shift(x, -s) if s < 0 else x


def _bias_lava(bias: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Broadcast a per-neuron bias given in Lava layout (flat or X,Y,C) against a batch `like`."""
    return bias.reshape((1,) + like.shape[1:]) if bias.size == int(np.prod(like.shape[1:])) else bias


def _synapse(layer: dict[str, Any], a: np.ndarray, fixed: bool) -> np.ndarray:
    syn = layer["synapse"]
    w = np.asarray(syn["weights"], np.int64 if fixed else np.float64)
    if layer["op"] == "conv":  # Lava layout (X, Y, C), kernel (O, kX, kY, C) flipped: back to torch layout
        wt = w[:, ::-1, ::-1, :].transpose(0, 3, 2, 1)
        at = a.transpose(0, 3, 2, 1)
        sx, sy = syn["stride"]
        px, py = syn["padding"]
        y = _conv_int(at, wt, (sy, sx), (py, px))
        return y.transpose(0, 3, 2, 1)
    acc = a.reshape(len(a), -1) @ w.T
    if fixed:
        e = syn["weight_exp"]
        acc = np.left_shift(acc, e) if e > 0 else np.right_shift(acc, -e)
    return acc


# ---------------------------------------------------------------------------------------------- file I/O
def save_graph(graph: dict[str, Any], path: str | os.PathLike) -> None:
    validate_graph(graph)
    write_text(path, json.dumps(graph, separators=(",", ":")) + "\n")


def load_graph(path: str | os.PathLike) -> dict[str, Any]:
    from ternkit.core.readers import MAX_TIMESTEPS, read_json

    graph = read_json(path, "Lava graph JSON", ArtifactError)  # bounded, regular files only, strict JSON
    try:
        validate_graph(graph)
        for key in ("timesteps", "window", "latency"):  # declared sizes: checked before anything allocates
            _need(not isinstance(graph.get(key), int) or graph[key] <= MAX_TIMESTEPS,
                  f"{key} {graph.get(key)} is more than {MAX_TIMESTEPS} timesteps")
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    return graph


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ArtifactError(msg)


def _num_array(v: Any, what: str, integer: bool) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArtifactError(f"{what} is not a numeric array") from None
    _need(arr.dtype != object and np.all(np.isfinite(arr)), f"{what} holds non-finite values")
    if integer:
        _need(bool(np.all(arr == np.round(arr))), f"{what} must be integers in a fixed-point graph")
    return arr


def validate_graph(graph: Any) -> None:
    """Check everything `lava_sim` and `emulate` rely on; raise ArtifactError with the first breach."""
    _need(isinstance(graph, dict), "a Lava graph must be a JSON object")
    _need(graph.get("format") == GRAPH_FORMAT, f"not a {GRAPH_FORMAT} file")
    _need(graph.get("version") == GRAPH_VERSION, f"graph version {graph.get('version')!r} is not supported "
          f"(this ternkit reads version {GRAPH_VERSION})")
    _need(graph.get("numerics") in ("fixed_pt", "floating_pt"), "numerics must be fixed_pt or floating_pt")
    _need(graph.get("neuron") in NEURONS, f"neuron must be one of {', '.join(NEURONS)}")
    for key in ("timesteps", "window"):
        _need(isinstance(graph.get(key), int) and graph[key] >= 1, f"{key} must be a positive integer")
    labels = graph.get("labels")
    _need(isinstance(labels, list) and len(labels) >= 2 and all(isinstance(s, str) for s in labels),
          "labels must be a list of at least two strings")
    inp = graph.get("input")
    _need(isinstance(inp, dict), "input section missing")
    fixed = graph["numerics"] == "fixed_pt"
    for key in ("shape", "lava_shape", "mean", "std", "stats_shape"):
        _need(isinstance(inp.get(key), list), f"input.{key} missing")
    _need(isinstance(inp.get("mean_in_bias"), bool), "input.mean_in_bias must be true or false")
    _need(inp.get("layout") in ("flat", "xyc") and inp.get("encoding") in ("graded", "rate"),
          "input layout/encoding unknown")
    _need((inp["encoding"] == "graded") == (graph["neuron"] == "sigma-delta"), "input encoding does not fit neuron")
    std = _num_array(inp["std"], "input.std", False)
    _need(bool(np.all(std > 0)), "input.std must be positive")
    _num_array(inp["mean"], "input.mean", False)
    if inp["encoding"] == "graded" and fixed:
        _need(isinstance(inp.get("bits"), int) and 2 <= inp["bits"] <= 24, "input.bits must be in 2..24")
        _need(isinstance(inp.get("unit"), int | float) and inp["unit"] > 0, "input.unit must be positive")
    if inp["encoding"] == "rate":
        _need(isinstance(inp.get("lam"), int | float) and inp["lam"] > 0, "input.lam must be positive")
        _need(isinstance(inp.get("rate_den"), int) and inp["rate_den"] >= 1, "input.rate_den must be >= 1")
    layers = graph.get("layers")
    _need(isinstance(layers, list) and layers, "layers must be a non-empty list")
    _need(graph["window"] == graph["timesteps"], "window must equal timesteps")
    _need(graph.get("latency") == len(layers), "latency must be the number of layers")
    prev = list(inp["lava_shape"])
    for k, layer in enumerate(layers):
        where = f"layers[{k}]"
        _need(isinstance(layer, dict) and layer.get("op") in ("dense", "conv"), f"{where}: op must be dense or conv")
        syn, nr = layer.get("synapse"), layer.get("neuron")
        _need(isinstance(syn, dict) and isinstance(nr, dict), f"{where}: synapse and neuron sections required")
        w = _num_array(syn.get("weights"), f"{where}.synapse.weights", fixed)
        _need(list(w.shape) == syn.get("shape"), f"{where}: weights do not have the declared shape")
        if fixed:
            _need(bool(np.all(np.abs(w) <= 255 * (1 << 16))), f"{where}: weights out of range")
        _need(isinstance(syn.get("weight_exp"), int) and -24 <= syn["weight_exp"] <= 24,
              f"{where}: weight_exp must be an integer in -24..24")
        nshape = nr.get("shape")
        _need(isinstance(nshape, list) and all(isinstance(v, int) and v > 0 for v in nshape),
              f"{where}: neuron shape invalid")
        if layer["op"] == "dense":
            _need(w.ndim == 2 and [int(np.prod(prev))] == [w.shape[1]] and [w.shape[0]] == nshape,
                  f"{where}: dense weights {list(w.shape)} do not connect {prev} to {nshape}")
        else:
            _need(w.ndim == 4 and syn.get("input_shape") == prev and w.shape[3] == prev[2] and nshape[2] == w.shape[0],
                  f"{where}: conv weights {list(w.shape)} do not connect {prev} to {nshape}")
            for key in ("stride", "padding"):
                _need(isinstance(syn.get(key), list) and len(syn[key]) == 2 and all(
                    isinstance(v, int) and v >= (1 if key == "stride" else 0) for v in syn[key]),
                    f"{where}: conv {key} invalid")
        last = k == len(layers) - 1
        _need(nr.get("kind") == ("readout" if last else graph["neuron"]),
              f"{where}: neuron kind {nr.get('kind')!r} does not fit position and neuron model")
        _need(isinstance(nr.get("in_shift"), int) and -24 <= nr["in_shift"] <= 24, f"{where}: in_shift invalid")
        _need(isinstance(nr.get("bias_exp"), int) and 0 <= nr["bias_exp"] <= 24, f"{where}: bias_exp invalid")
        bias = _num_array(nr.get("bias_mantissa"), f"{where}.neuron.bias_mantissa", fixed)
        _need(bias.size == int(np.prod(nshape)) or (layer["op"] == "conv" and bias.size == nshape[2]),
              f"{where}: bias does not match the neuron count")
        _need(isinstance(nr.get("vth"), int | float) and nr["vth"] >= 0, f"{where}: vth invalid")
        if not last:
            _need(nr.get("phase") == k + 1, f"{where}: phase must be {k + 1} (its delay from the source)")
        fan = _num_array(layer.get("fan_out"), f"{where}.fan_out", True)
        _need(fan.size == int(np.prod(prev)), f"{where}: fan_out does not match the input count")
        prev = nshape
    _need(prev == [len(labels)], f"readout has shape {prev}, but there are {len(labels)} labels")
