"""The activity record entries of a NIR simulation: one per model node with connections (weight operations,
pooling, add), as `ternkit report` reads them (`ternkit.core.activity_schema`).

A weight or pool node's messages are the non-zero inputs it received (input currents of the first layer count
at every step, as a chip injects them; spikes once each), its synaptic operations those messages times the
non-zero synapses each reaches; an add's are the spikes and values its branches send through identity edges
(and Scale nodes). Each IF population's updates (neurons x timesteps) go to the entry of the last node with
connections at or before the ReLU it implements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core.activity_schema import entry
from ternkit.core.metrics import synaptic_nodes
from ternkit.core.model import TernaryModel

from .graph import SpikingGraph
from .sim import SYNAPTIC, SimRun, fan_out

__all__ = ["nir_activity"]


def nir_activity(model: TernaryModel, graph: SpikingGraph, run: SimRun) -> list[dict[str, Any]]:
    rows = synaptic_nodes(model)
    counts = model.counts()
    n, T = run.samples, run.timesteps
    acc = {i: {"messages": 0.0, "synops": 0.0, "updates": 0.0, "slots": 0.0, "fan": 0.0, "inputs": 0} for i in rows}
    shapes = {k: v.shape for k, v in graph.nodes.items()}
    for k, node in graph.nodes.items():
        if node.kind in SYNAPTIC and node.origin in acc and k in run.messages:
            (src,) = {shapes[s] for s in graph.inputs_of(k)}
            msgs = np.asarray(run.messages[k], np.float64).reshape(-1)
            fan = fan_out(node, src).astype(np.float64)
            a = acc[node.origin]
            a["messages"] += float(msgs.sum()) / n
            a["synops"] += float(msgs @ fan) / n
            a["slots"] += msgs.size * T
            a["fan"] += float(fan.sum())
            a["inputs"] += msgs.size
        if node.kind == "IF" and node.origin is not None:
            before = [i for i in rows if i <= node.origin]
            if before:
                acc[before[-1]]["updates"] += float(np.prod(node.shape)) * T
    for i, sources in graph.joins.items():
        if i not in acc:
            continue
        a = acc[i]
        for s in sources:
            if graph.nodes[s].kind == "Scale":
                continue  # counted as a synaptic node above
            sent = run.spikes.get(s, run.emitted.get(s))
            if sent is None:
                continue
            sent = np.asarray(sent, np.float64).reshape(-1)
            a["messages"] += float(sent.sum()) / n
            a["synops"] += float(sent.sum()) / n
            a["slots"] += sent.size * T
            a["fan"] += sent.size
            a["inputs"] += sent.size
    out = []
    for i in rows:
        a, c = acc[i], counts[i]
        out.append(entry(i, model.nodes[i].op.kind, neurons=c.outputs, fan_out=a["fan"] / max(a["inputs"], 1),
                         messages=a["messages"], synaptic_ops=a["synops"], neuron_updates=a["updates"],
                         input_activation_sparsity=1 - a["messages"] / a["slots"] if a["slots"] else 0.0,
                         node=model.nodes[i].name, connections=c.connections, nonzero_connections=c.nonzero))
    return out
