"""Memory of a model as it is stored, the entropy bound of its weights, and whether it fits a target.

We count what is stored: a ternary weight occupies the bits it is packed in (2, four per byte, as in the
`.tern` file and ONNX INT2), not the 4 bytes NeuroBench's footprint assigns to any parameter held in a float32
tensor; that NeuroBench figure is reported beside ours for comparison.
"""

from __future__ import annotations

import math

import numpy as np

from ternkit.core.io import bits_for_levels
from ternkit.core.model import TernaryModel

from .ops import LayerOps
from .spec import Target

__all__ = ["model_memory", "entropy_bits", "fit"]


def entropy_bits(q: np.ndarray) -> float:
    """n * H(p) in bits: the floor for coding these weights independently with their empirical distribution
    (log2 3 = 1.585 bits per weight for uniform trits; less when zeros dominate)."""
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(q.size * -(p * np.log2(p)).sum()) if q.size else 0.0


def model_memory(model: TernaryModel, ops: list[LayerOps]) -> dict:
    """Per layer and total bytes (stored, entropy bound, float32 equivalent) and peak activation memory."""
    ternary = model.kind == "ternary"
    bits = bits_for_levels(model.levels) if ternary else 32
    layers, by_layer = [], {o.layer: o for o in ops}
    for li, layer in enumerate(model.layers):
        if li not in by_layer:
            continue
        o, w = by_layer[li], layer.weight
        stored_bytes = math.ceil(w.size / (8 // bits)) if ternary else 4 * w.size
        layers.append({
            "index": o.index, "kind": o.kind, "weights": int(w.size), "zero_weights": int(w.size - o.nonzero_weights),
            "zero_fraction": 1 - o.nonzero_weights / w.size,
            "weight_bits_per_weight": bits, "weight_bytes": stored_bytes,
            "entropy_bytes": entropy_bits(w) / 8 if ternary else None,
            "entropy_bits_per_weight": entropy_bits(w) / w.size if ternary else None,
            "scale_bytes": 4 * int(layer.scale.size), "bias_bytes": 4 * int(layer.bias.size),
            "float32_bytes": 4 * int(w.size + layer.bias.size),
            "output_elements": o.neurons,
        })
    n_weights = sum(r["weights"] for r in layers)
    weight_bytes = sum(r["weight_bytes"] for r in layers)
    side_bytes = sum(r["scale_bytes"] + r["bias_bytes"] for r in layers)
    param_bytes = weight_bytes + side_bytes
    n_params = n_weights + sum((r["scale_bytes"] + r["bias_bytes"]) // 4 for r in layers)
    entropy = sum(r["entropy_bytes"] for r in layers) if ternary else None
    float_bytes = sum(r["float32_bytes"] for r in layers)
    peak = max(o.in_elements + o.neurons for o in ops)  # layer by layer: its input and output buffers live
    bits_per_param = 8 * param_bytes / n_weights
    return {
        "layers": layers,
        "weights": n_weights, "parameters": n_params,
        "weight_bytes": weight_bytes, "scale_and_bias_bytes": side_bytes, "parameter_bytes": param_bytes,
        "entropy_weight_bytes": entropy,
        "entropy_parameter_bytes": entropy + side_bytes if ternary else None,
        "float32_parameter_bytes": float_bytes,
        "neurobench_footprint_bytes": 4 * n_params,
        "bits_per_weight": 8 * weight_bytes / n_weights,
        "entropy_bits_per_weight": 8 * entropy / n_weights if ternary else None,
        # the paper's claim: all stored bits (weights, scales, biases) per learned weight
        "bits_per_learned_parameter": bits_per_param,
        "compression_vs_float32": 32 / bits_per_param, "compression_vs_float64": 64 / bits_per_param,
        "entropy_bits_per_learned_parameter": 8 * (entropy + side_bytes) / n_weights if ternary else None,
        "peak_activation_elements": int(peak),
        "peak_activation_bytes_float32": 4 * int(peak),
    }


def fit(target: Target, model: TernaryModel, memory: dict, ops: list[LayerOps]) -> dict:
    """Does the model fit? MCU/CPU: parameters in weight memory, peak activations in SRAM. Neuromorphic: cores
    needed per layer = max(neurons / neurons per core, synapse bits / synaptic memory per core)."""
    if target.von_neumann:
        act_bytes = math.ceil(memory["peak_activation_elements"] * target.value("activation_bits") / 8)
        wcap, acap = target.value("weight_memory_bytes"), target.value("activation_memory_bytes")
        return {"fits": memory["parameter_bytes"] <= wcap and act_bytes <= acap,
                "parameter_bytes": memory["parameter_bytes"], "weight_memory_bytes": wcap,
                "weight_memory_used": memory["parameter_bytes"] / wcap,
                "peak_activation_bytes": act_bytes, "activation_memory_bytes": acap,
                "activation_memory_used": act_bytes / acap}
    syn_bits = bits_for_levels(model.levels) if model.kind == "ternary" else 8
    npc, mem = target.value("neurons_per_core"), target.value("synaptic_memory_bits_per_core")
    per_layer = []
    for o in ops:
        synapses = o.nonzero_weight_macs if target.skip_zero_weights else o.dense_macs
        by_neurons, by_synapses = math.ceil(o.neurons / npc), math.ceil(synapses * syn_bits / mem)
        per_layer.append({"index": o.index, "neurons": o.neurons, "synapses": synapses,
                          "cores_by_neurons": by_neurons, "cores_by_synapses": by_synapses,
                          "cores": max(1, by_neurons, by_synapses)})
    cores = sum(r["cores"] for r in per_layer)
    return {"fits": cores <= target.value("cores"), "cores_needed": cores, "cores": int(target.value("cores")),
            "cores_used": cores / target.value("cores"), "bits_per_synapse": syn_bits,
            "synapses": sum(r["synapses"] for r in per_layer), "layers": per_layer,
            "note": "float weights are assumed quantised to 8-bit synapses" if model.kind != "ternary" else ""}
