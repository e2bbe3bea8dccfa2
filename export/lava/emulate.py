"""numpy model of a Lava graph's dynamics, integer-exact for fixed point: the real Lava run must equal it
(tests check bit for bit), and calibration uses it to score choices without starting Lava.

Layouts are Lava's: a population of shape (C, H, W) is (X, Y, C) = (W, H, C); conv kernels are
(C_out, kX, kY, C_in / groups), flipped (Lava convolves); dense columns follow the source's Lava flatten order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.ops.conv2d import conv_fan_out
from ternkit.core.ops.conv2d import correlate as conv_int

__all__ = ["conv_int", "conv_fan_out", "encode_inputs", "emulate", "lava_to_torch_kernel"]


def lava_to_torch_kernel(w: np.ndarray) -> np.ndarray:
    return w[:, ::-1, ::-1, :].transpose(0, 3, 2, 1)


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
    if inp["mean_in_bias"]:  # the readers' biases hold what -mean/std contributes
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
        x = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]  # channel (or feature) axis
        x = np.clip(x / inp["lam"], 0, 1) * inp["rate_den"]
        if fixed:
            x = np.round(x).astype(np.int64)
    if inp["layout"] == "xyc":
        x = x.transpose(0, 3, 2, 1)
    return x.reshape((len(x),) + tuple(inp["lava_shape"]))


# ---------------------------------------------------------------------------------------------- dynamics
def _shift(x: np.ndarray, s: int | list[int]) -> np.ndarray:
    """Right shift by s (left by -s), as the neuron models apply `in_shift` (one, or one per neuron / per
    channel on the last axis) and Dense its `weight_exp`."""
    if isinstance(s, list):
        s = np.asarray(s, np.int64)
        return np.where(s >= 0, np.right_shift(x, np.maximum(s, 0)), np.left_shift(x, np.maximum(-s, 0)))
    return np.right_shift(x, s) if s > 0 else np.left_shift(x, -s) if s < 0 else x


def _bias(pop: dict[str, Any], fixed: bool) -> np.ndarray:
    """The population's bias in its Lava shape (per neuron, or per channel broadcast over X, Y)."""
    b = np.asarray(pop["bias_mantissa"], np.int64 if fixed else np.float64)
    if fixed:
        b = b << pop["bias_exp"]
    return np.broadcast_to(b.reshape(pop["shape"]) if b.size == int(np.prod(pop["shape"])) else b,
                           tuple(pop["shape"]))


def synapse(syn: dict[str, Any], a: np.ndarray, fixed: bool) -> np.ndarray:
    """What one synapse process sends for a batch `a` of its source's outputs (Lava layouts)."""
    w = np.asarray(syn["weights"], np.int64 if fixed else np.float64)
    if syn["op"] == "conv":
        sx, sy = syn["stride"]
        px, py = syn["padding"]
        y = conv_int(a.transpose(0, 3, 2, 1), lava_to_torch_kernel(w), (sy, sx), (py, px), syn.get("groups", 1))
        return y.transpose(0, 3, 2, 1)
    acc = a.reshape(len(a), -1) @ w.T
    return _shift(acc, -syn["weight_exp"]) if fixed else acc


def _last_use(pops: list[dict[str, Any]]) -> dict[int, int]:
    last: dict[int, int] = {}
    for k, p in enumerate(pops):
        for syn in p["synapses"]:
            last[syn["source"]] = k
    return last


def emulate(graph: dict[str, Any], x_raw: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(readout values (N, classes), messages sent per neuron summed over the batch: the input source first,
    then every population but the readout, in order). Fixed point: integer-exact."""
    fixed = graph["numerics"] == "fixed_pt"
    a = encode_inputs(graph, x_raw)
    n, pops = len(a), graph["populations"]
    last = _last_use(pops)
    if graph["neuron"] == "sigma-delta":
        outs = {0: a}
        counts = [(a != 0).sum(0).reshape(-1)]
        for k, p in enumerate(pops, start=1):
            acc = sum(synapse(syn, outs[syn["source"]], fixed).reshape((n,) + tuple(p["shape"]))
                      for syn in p["synapses"])
            if fixed:
                acc = _shift(acc, p["in_shift"])
            pre = acc + _bias(p, fixed)[None]
            if p["kind"] == "readout":
                return pre.reshape(n, -1), counts
            outs[k] = np.maximum(pre, 0) if p["activation"] == "relu" else pre
            counts.append((outs[k] != 0).sum(0).reshape(-1))
            for src in [s for s, at in last.items() if at == k - 1 and s in outs]:
                del outs[src]  # no later reader
        raise ArtifactError("graph has no readout")
    T, den = graph["timesteps"], graph["input"]["rate_den"]
    trains = {0: [((s + 1) * a // den - s * a // den) for s in range(T)]}  # input spikes per step
    counts = [sum(trains[0]).sum(0).reshape(-1)]
    for k, p in enumerate(pops, start=1):
        bias = _bias(p, fixed)[None]

        def current(s: int, p=p) -> np.ndarray:
            return sum(synapse(syn, trains[syn["source"]][s], fixed).reshape((n,) + tuple(p["shape"]))
                       for syn in p["synapses"])

        if p["kind"] == "readout":
            acc = sum(current(s) for s in range(T))
            return (acc + bias).reshape(n, -1), counts
        v, out = None, []
        for s in range(T):
            cur = current(s)
            if fixed:
                cur = _shift(cur, p["in_shift"])
            v = (0 if v is None else v) + cur + bias
            fire = v >= p["vth"]
            v = v - fire * p["vth"]
            out.append(fire.astype(np.int64 if fixed else np.float64))
        trains[k] = out
        counts.append(sum(out).sum(0).reshape(-1))
        for src in [s for s, at in last.items() if at == k - 1 and s in trains]:
            del trains[src]
    raise ArtifactError("graph has no readout")
