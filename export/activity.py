"""The activity record ("ternkit-activity" v1): what one inference costs in messages, synaptic operations and
neuron updates, measured by a simulation (Lava) or counted from activations (onnxruntime / numpy).

`ternkit report` reads this file to estimate energy, so its schema is a contract (docs/lava.md).
Synaptic operations skip zeros: a message from input neuron j costs fan_out[j] = the non-zero weights it
reaches; the dense MAC count of the same network is reported beside it, so the ratio is the activity
sparsity an event-driven chip exploits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core.model import Conv2d, Dense, TernaryModel

__all__ = ["ACTIVITY_FORMAT", "ACTIVITY_VERSION", "fan_out", "conv_fan_out", "layer_entry", "activity_record",
           "activations_activity", "dense_macs"]

ACTIVITY_FORMAT = "ternkit-activity"
ACTIVITY_VERSION = 1


def conv_fan_out(w: np.ndarray, in_chw: tuple[int, ...], stride, padding) -> np.ndarray:
    """Non-zero synapses leaving each input neuron of a conv layer, shape (C, H, W)."""
    c, h, wd = in_chw
    _, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    nz = (np.asarray(w) != 0).sum(0)  # (C, kh, kw): output channels reached through each kernel tap
    fan = np.zeros((c, h + 2 * ph + sh * oh, wd + 2 * pw + sw * ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            fan[:, i:i + sh * oh:sh, j:j + sw * ow:sw] += nz[:, i, j][:, None, None]
    return fan[:, ph:ph + h, pw:pw + wd]


def fan_out(layer: Dense | Conv2d, in_shape: tuple[int, ...]) -> np.ndarray:
    """Non-zero synapses per input neuron, flat in the model's (torch) order."""
    if isinstance(layer, Conv2d):
        return conv_fan_out(layer.weight, in_shape, layer.stride, layer.padding).reshape(-1)
    return (np.asarray(layer.weight) != 0).sum(0).astype(np.int64)


def layer_entry(index: int, kind: str, neurons: int, fan: np.ndarray, messages: np.ndarray, samples: int,
                neuron_updates: float, slots: float) -> dict[str, Any]:
    """One weight layer: `messages` are per input neuron, summed over `samples`; `slots` is how many
    messages could have been sent per inference (inputs x timesteps), for the sparsity."""
    messages = np.asarray(messages, np.float64).reshape(-1)
    fan = np.asarray(fan, np.float64).reshape(-1)
    per = float(messages.sum()) / samples
    return {"index": int(index), "kind": kind, "neurons": int(neurons), "fan_out": float(fan.mean()),
            "messages_per_inference": per, "synaptic_ops_per_inference": float(messages @ fan) / samples,
            "neuron_updates_per_inference": float(neuron_updates),
            "input_activation_sparsity": float(1 - per / slots) if slots else 0.0}


def activity_record(*, backend: str, neuron: str | None, timesteps: int, samples: int, accuracy: float | None,
                    agreement: float, samples_per_second: float, layers: list[dict[str, Any]],
                    dense_macs: int, **extra: Any) -> dict[str, Any]:
    return {"format": ACTIVITY_FORMAT, "version": ACTIVITY_VERSION, "backend": backend, "neuron": neuron,
            "timesteps": int(timesteps), "samples": int(samples), "accuracy": accuracy, "agreement": agreement,
            "samples_per_second": samples_per_second, "layers": layers,
            "synaptic_ops_per_inference": float(sum(e["synaptic_ops_per_inference"] for e in layers)),
            "neuron_updates_per_inference": float(sum(e["neuron_updates_per_inference"] for e in layers)),
            "dense_macs_per_inference": int(dense_macs), **extra}


def dense_macs(model: TernaryModel) -> int:
    shapes, total = model.shapes(), 0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense | Conv2d):
            total += int(np.prod(shapes[i])) * int(np.prod(layer.weight.shape[1:]))
    return total


def activations_activity(model: TernaryModel, x_raw: np.ndarray) -> tuple[list[dict[str, Any]], int]:
    """Per weight layer activity of a frame-based (one pass per inference) run, from the reference
    activations: messages = non-zero inputs, synaptic ops = non-zero inputs x their non-zero fan-out,
    neuron updates = output neurons. Returns (layers, dense MACs per inference)."""
    n = len(x_raw)
    h = model.input.normalise(np.asarray(x_raw, np.float32))
    shapes, entries, shape = model.shapes(), [], tuple(model.input.shape)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense | Conv2d):
            nz = (h.reshape(n, -1) != 0).sum(0)
            entries.append(layer_entry(i, layer.kind, int(np.prod(shapes[i])), fan_out(layer, shape), nz, n,
                                       int(np.prod(shapes[i])), int(np.prod(shape))))
        h = layer.forward(h)
        shape = shapes[i]
    return entries, dense_macs(model)
