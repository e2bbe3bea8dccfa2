"""ternkit's own simulator of the NIR equations (numpy, float32), the twin every NIR consumer is checked against.

Discrete time, one step per input frame, the order a feed-forward NIR executor uses (nirtorch, Norse): at
every step each node, in topological order, reads the sum of its inputs' outputs of the same step;
IF: v <- v + r * I; spike where v > v_threshold (strictly); there v <- v_reset. Float32 throughout, as the
consumers compute: with integer weights the sums of spikes are exact, so a consumer and this simulator agree
spike for spike. Nodes whose inputs never change (the input current and what only it feeds) are computed once.

It also counts what an event-driven chip would do (activity): per weight/pool/scale node the non-zero inputs
it receives (messages) and the synaptic operations they cause (message x that input's non-zero fan-out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ternkit.core.ops import im2col

from ..activity import conv_fan_out
from .graph import NirNode, SpikingGraph

__all__ = ["SimRun", "run_graph", "run_batches", "fan_out"]


@dataclass
class SimRun:
    counts: np.ndarray  # (N, classes) output spike counts
    spikes: dict[str, np.ndarray]  # IF node -> spikes per neuron summed over samples and steps
    messages: dict[str, np.ndarray]  # synaptic node -> non-zero inputs per input element, summed (samples, steps)
    timesteps: int
    samples: int
    emitted: dict[str, np.ndarray] = field(default_factory=dict)  # node -> non-zero outputs per element, summed
    currents: list[np.ndarray] = field(default_factory=list)  # the recorded node's input, one array per step
    final_v: np.ndarray | None = None  # (N, classes) membrane of the output neurons after the last step


def _conv(x: np.ndarray, p: dict) -> np.ndarray:
    w = np.asarray(p["weight"], np.float32)
    g = int(p["groups"])
    n = x.shape[0]
    cout, cin_g, kh, kw = w.shape
    cols = im2col(x, (kh, kw), tuple(int(s) for s in p["stride"]), tuple(int(s) for s in p["padding"]))
    oh, ow = cols.shape[2], cols.shape[3]
    cols = cols.reshape(n, g, cin_g, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, g, oh * ow, -1)
    y = cols @ w.reshape(g, cout // g, -1).transpose(0, 2, 1)
    y = y.transpose(0, 1, 3, 2).reshape(n, cout, oh, ow)
    return np.ascontiguousarray(y + np.asarray(p["bias"], np.float32).reshape(-1, 1, 1))


def _sumpool(x: np.ndarray, p: dict) -> np.ndarray:
    k = tuple(int(s) for s in p["kernel_size"])
    cols = im2col(x, k, tuple(int(s) for s in p["stride"]), tuple(int(s) for s in p["padding"]))
    return np.ascontiguousarray(cols.sum((4, 5), dtype=np.float32))


def _apply(node: NirNode, x: np.ndarray) -> np.ndarray:
    p = node.params
    if node.kind == "Affine":
        return x @ np.asarray(p["weight"], np.float32).T + np.asarray(p["bias"], np.float32)
    if node.kind == "Conv2d":
        return _conv(x, p)
    if node.kind == "SumPool2d":
        return _sumpool(x, p)
    if node.kind == "Scale":
        return x * np.asarray(p["scale"], np.float32)
    if node.kind == "Flatten":
        return x.reshape(len(x), -1)
    if node.kind in ("Output",):
        return x
    raise ValueError(f"no simulation of NIR node {node.kind}")


def fan_out(node: NirNode, in_shape: tuple[int, ...]) -> np.ndarray:
    """Non-zero synapses leaving each input element of a synaptic node (flat, C order)."""
    p = node.params
    if node.kind == "Affine":
        return (np.asarray(p["weight"]) != 0).sum(0).astype(np.int64)
    if node.kind == "Conv2d":
        return conv_fan_out(p["weight"], in_shape, tuple(p["stride"]), tuple(p["padding"])).reshape(-1)
    if node.kind == "SumPool2d":
        kh, kw = (int(s) for s in p["kernel_size"])
        ones = np.ones((in_shape[0], 1, kh, kw))
        return conv_fan_out(ones, in_shape, tuple(p["stride"]), tuple(p["padding"])).reshape(-1)
    return (np.asarray(p["scale"]) != 0).astype(np.int64).reshape(-1)  # Scale: one synapse each


SYNAPTIC = ("Affine", "Conv2d", "SumPool2d", "Scale")


def run_graph(graph: SpikingGraph, x: np.ndarray, timesteps: int, *, record: str | None = None,
              stop_after: str | None = None, activity: bool = True) -> SimRun:
    """Run a batch of normalised samples `x` (N, *input shape) for `timesteps` steps. `record`: keep that
    node's summed input at every step (calibration); `stop_after`: nodes after it are not simulated."""
    x = np.asarray(x, np.float32)
    n = len(x)
    names = list(graph.nodes)
    ins = {k: graph.inputs_of(k) for k in names}
    if stop_after is not None:
        names = names[:names.index(stop_after) + 1]
    constant = {"input"}
    for k in names[1:]:
        if graph.nodes[k].kind != "IF" and ins[k] and all(i in constant for i in ins[k]):
            constant.add(k)
    state = {k: np.zeros((n,) + graph.nodes[k].shape, np.float32) for k in names if graph.nodes[k].kind == "IF"}
    spikes = {k: np.zeros(graph.nodes[k].shape, np.float64) for k in state}
    messages: dict[str, np.ndarray] = {}
    out_counts = None
    values: dict[str, np.ndarray] = {"input": x}
    run = SimRun(np.zeros(0), spikes, messages, timesteps, n)
    emitted = run.emitted
    joined = {s for srcs in graph.joins.values() for s in srcs}
    for t in range(timesteps):
        for k in names[1:]:
            if t and k in constant:
                if activity and k in messages:
                    messages[k] += messages[k + "\0first"]
                if activity and k in joined:
                    emitted[k] = emitted[k] + (values[k] != 0).sum(0, dtype=np.float64)
                continue
            src = ins[k]
            total = values[src[0]]
            for i in src[1:]:
                total = total + values[i]
            node = graph.nodes[k]
            if k == record:
                run.currents.append(total.copy())
            if activity and node.kind in SYNAPTIC:
                nz = (total != 0).sum(0, dtype=np.float64)
                messages[k] = messages.get(k, 0) + nz
                if k in constant:
                    messages[k + "\0first"] = nz
            if node.kind == "IF":
                v = state[k]
                v += np.asarray(node.params["r"], np.float32) * total
                s = v > np.asarray(node.params["v_threshold"], np.float32)
                v[s] = np.broadcast_to(np.asarray(node.params["v_reset"], np.float32), v.shape)[s]
                out = s.astype(np.float32)
                spikes[k] += out.sum(0)
                values[k] = out
            else:
                values[k] = _apply(node, total)
            if activity and k in joined:
                emitted[k] = emitted.get(k, 0) + (values[k] != 0).sum(0, dtype=np.float64)
        if stop_after is None:
            step = values[graph.inputs_of("output")[0]]
            out_counts = step.astype(np.int64) if out_counts is None else out_counts + step.astype(np.int64)
    for k in [k for k in messages if k.endswith("\0first")]:
        del messages[k]
    if stop_after is None:
        run.counts = out_counts
        k, c = graph.copies, out_counts.shape[1]
        run.final_v = state[graph.output_neuron].reshape(n, k, c).sum(1)
    return run


def run_batches(graph: SpikingGraph, x: np.ndarray, timesteps: int, batch: int = 500) -> SimRun:
    """`run_graph` over `x` in batches (memory stays bounded), the counters merged."""
    runs = [run_graph(graph, x[s:s + batch], timesteps) for s in range(0, len(x), batch)]
    first = runs[0]
    for r in runs[1:]:
        for d, e in ((first.spikes, r.spikes), (first.messages, r.messages), (first.emitted, r.emitted)):
            for k, v in e.items():
                d[k] = d[k] + v
    first.counts = np.concatenate([r.counts for r in runs])
    first.final_v = np.concatenate([r.final_v for r in runs])
    first.samples = len(x)
    return first
