"""Memory of a model as it is stored, the entropy bound of its weights, activation buffers, and whether it
fits a target -- per node of the graph.

Bytes come from the artifact (`op.stored_bytes()`, `op.arrays()`, `model.float32_bytes()`), so the report,
the `.tern` file and the training metrics agree. We count what is stored: a ternary weight occupies the bits
it is packed in (2, four per byte, as in the `.tern` file and ONNX INT2), not the 4 bytes NeuroBench's
footprint assigns to any parameter held in a float32 tensor; that NeuroBench figure is reported beside ours.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ternkit.core import INPUT
from ternkit.core.metrics import compression
from ternkit.core.model import TernaryModel
from ternkit.core.ops import Op

from .ops import NodeOps
from .spec import Target

__all__ = ["model_memory", "entropy_bits", "activation_buffers", "fit"]

# An operation declaring `in_place` (elementwise on one input, or a view) overwrites its input's buffer when no
# other node reads that input; every other operation writes a buffer of its own.


def entropy_bits(q: np.ndarray) -> float:
    """n * H(p) in bits: the floor for coding these weights independently with their empirical distribution
    (log2 3 = 1.585 bits per weight for uniform trits; less when zeros dominate)."""
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(q.size * -(p * np.log2(p)).sum()) if q.size else 0.0


def activation_buffers(model: TernaryModel) -> dict[str, Any]:
    """Activation buffers executing the nodes in order, freeing each as soon as its last reader has run:
    the peak of live values (a chain: max(input + output) of a node) and the values written per inference
    (the input plus every buffer a node writes; in-place operations write none)."""
    shapes, consumers = model.shape_map(), model.consumers()
    last = {name: max((i for i, n in enumerate(model.nodes) if name in n.inputs), default=len(model.nodes))
            for name in consumers}
    last[model.nodes[-1].name] = len(model.nodes)  # the output is read by the caller
    size = {k: int(np.prod(v)) for k, v in shapes.items()}
    live: dict[str, int] = {INPUT: size[INPUT]}  # buffer owner -> values
    owner: dict[str, str] = {INPUT: INPUT}  # tensor -> the buffer holding it
    peak, written, per_node = size[INPUT], size[INPUT], {}
    for i, n in enumerate(model.nodes):
        src = n.inputs[0]
        if n.op.in_place and len(consumers[src]) == 1:
            owner[n.name] = owner[src]
            per_node[n.name] = 0
        else:
            owner[n.name] = n.name
            live[n.name] = size[n.name]
            written += size[n.name]
            per_node[n.name] = size[n.name]
            peak = max(peak, sum(live.values()))
        for t in {*n.inputs, n.name}:  # free buffers whose every tensor is read for the last time
            buf = owner[t]
            if buf in live and all(last[k] <= i for k, b in owner.items() if b == buf):
                del live[buf]
    return {"peak_elements": int(peak), "written_elements": int(written), "per_node": per_node}


def _node_row(o: NodeOps, op: Op, kind: str, bits: int, buffer: int) -> dict[str, Any]:
    arrays = op.arrays(kind, bits)
    row: dict[str, Any] = {
        "index": o.index, "node": o.node, "kind": o.kind, "weights": o.weights,
        "zero_weights": o.weights - o.nonzero_weights,
        "zero_fraction": 1 - o.nonzero_weights / o.weights if o.weights else None,
        "weight_bits_per_weight": (bits if kind == "ternary" else 32) if o.weights else None,
        "weight_bytes": int(arrays["weight"].nbytes) if "weight" in arrays else 0,
        "entropy_bytes": None, "entropy_bits_per_weight": None,
        "scale_bytes": int(arrays["scale"].nbytes) if "scale" in arrays else 0,
        "bias_bytes": int(arrays["bias"].nbytes) if "bias" in arrays else 0,
        "stored_bytes": op.stored_bytes(kind, bits),
        "parameters": int(sum(a.size for k, a in arrays.items() if k != "weight")) + o.weights,
        "float32_bytes": op.float32_bytes(),
        "output_elements": o.neurons, "activation_buffer_elements": buffer,
    }
    if o.weights and kind == "ternary":
        e = entropy_bits(op.weight)
        row["entropy_bytes"], row["entropy_bits_per_weight"] = e / 8, e / o.weights
    return row


def model_memory(model: TernaryModel, ops: list[NodeOps]) -> dict:
    """Per node and total bytes (stored, entropy bound, float32 equivalent) and peak activation memory."""
    ternary = model.kind == "ternary"
    bits = model.bits()
    buffers = activation_buffers(model)
    layers = [_node_row(o, n.op, model.kind, bits, buffers["per_node"][n.name])
              for o, n in zip(ops, model.nodes, strict=True)]
    n_weights = model.num_weights()
    weight_bytes = sum(r["weight_bytes"] for r in layers)
    param_bytes = model.stored_bytes()
    side_bytes = param_bytes - weight_bytes  # scales, biases, affine parameters
    n_params = sum(r["parameters"] for r in layers)
    entropy = sum(r["entropy_bytes"] for r in layers if r["entropy_bytes"] is not None) if ternary else None
    bits_per_param = 8 * param_bytes / n_weights
    return {
        "layers": layers,
        "weights": n_weights, "parameters": n_params,
        "weight_bytes": weight_bytes, "scale_and_bias_bytes": side_bytes, "parameter_bytes": param_bytes,
        "entropy_weight_bytes": entropy,
        "entropy_parameter_bytes": entropy + side_bytes if ternary else None,
        "float32_parameter_bytes": model.float32_bytes(),
        "neurobench_footprint_bytes": 4 * n_params,
        "bits_per_weight": 8 * weight_bytes / n_weights,
        "entropy_bits_per_weight": 8 * entropy / n_weights if ternary else None,
        # the paper's claim: all stored bits (weights, scales, biases) per learned weight
        "bits_per_learned_parameter": bits_per_param,
        # the same figure as the training metrics' ratio_vs_float32/64 (ternkit.core.metrics.compression)
        "compression_vs_float32": compression(model, 32), "compression_vs_float64": compression(model, 64),
        "entropy_bits_per_learned_parameter": 8 * (entropy + side_bytes) / n_weights if ternary else None,
        "peak_activation_elements": buffers["peak_elements"],
        "peak_activation_bytes_float32": 4 * buffers["peak_elements"],
        "activation_elements_written": buffers["written_elements"],
    }


def fit(target: Target, model: TernaryModel, memory: dict, ops: list[NodeOps]) -> dict:
    """Does the model fit? MCU/CPU: parameters in weight memory, peak activations in SRAM. Neuromorphic: cores
    needed per node with connections = max(neurons / neurons per core, synapse bits / synaptic memory per
    core); nodes without connections (relu, affine, flatten) are properties of their producer's neurons."""
    if target.von_neumann:
        act_bytes = math.ceil(memory["peak_activation_elements"] * target.value("activation_bits") / 8)
        wcap, acap = target.value("weight_memory_bytes"), target.value("activation_memory_bytes")
        return {"fits": memory["parameter_bytes"] <= wcap and act_bytes <= acap,
                "parameter_bytes": memory["parameter_bytes"], "weight_memory_bytes": wcap,
                "weight_memory_used": memory["parameter_bytes"] / wcap,
                "peak_activation_bytes": act_bytes, "activation_memory_bytes": acap,
                "activation_memory_used": act_bytes / acap}
    syn_bits = model.bits() if model.kind == "ternary" else 8
    npc, mem = target.value("neurons_per_core"), target.value("synaptic_memory_bits_per_core")
    per_layer = []
    for o in ops:
        if not o.synaptic:
            continue
        synapses = o.nonzero_weight_macs if target.skip_zero_weights else o.dense_macs
        by_neurons, by_synapses = math.ceil(o.neurons / npc), math.ceil(synapses * syn_bits / mem)
        per_layer.append({"index": o.index, "node": o.node, "kind": o.kind, "neurons": o.neurons,
                          "synapses": synapses, "cores_by_neurons": by_neurons, "cores_by_synapses": by_synapses,
                          "cores": max(1, by_neurons, by_synapses)})
    cores = sum(r["cores"] for r in per_layer)
    return {"fits": cores <= target.value("cores"), "cores_needed": cores, "cores": int(target.value("cores")),
            "cores_used": cores / target.value("cores"), "bits_per_synapse": syn_bits,
            "synapses": sum(r["synapses"] for r in per_layer), "layers": per_layer,
            "note": "float weights are assumed quantised to 8-bit synapses" if model.kind != "ternary" else ""}
