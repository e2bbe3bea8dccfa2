"""Read the activity record `ternkit simulate` writes (JSON), and check it belongs to the model it is used with.

The record is data, not code from another package: targets never import the simulator, it only reads what a
run measured (messages, synaptic operations, neuron updates, activation sparsity per weight layer).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ternkit.core.errors import ArtifactError
from ternkit.core.readers import read_json

__all__ = ["Activity", "read_activity", "FORMAT", "VERSION", "FINGERPRINT_KEY"]

FORMAT = "ternkit-activity"
VERSION = 1
FINGERPRINT_KEY = "model_fingerprint"  # TernaryModel.fingerprint() of the model the record was measured on
_LAYER_NUMBERS = ("neurons", "fan_out", "messages_per_inference", "synaptic_ops_per_inference",
                  "neuron_updates_per_inference", "input_activation_sparsity")
_TOTALS = ("synaptic_ops_per_inference", "neuron_updates_per_inference", "dense_macs_per_inference")


@dataclass
class Activity:
    path: str
    backend: str
    neuron: str | None
    timesteps: int | None
    samples: int
    accuracy: float | None
    agreement: float | None
    layers: list[dict[str, Any]]
    synaptic_ops: float
    neuron_updates: float
    dense_macs: float

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "backend": self.backend, "neuron": self.neuron, "timesteps": self.timesteps,
                "samples": self.samples, "accuracy": self.accuracy, "agreement": self.agreement,
                "synaptic_ops_per_inference": self.synaptic_ops,
                "neuron_updates_per_inference": self.neuron_updates,
                "dense_macs_per_inference": self.dense_macs,
                "messages_per_inference": sum(layer["messages_per_inference"] for layer in self.layers)}


def _number(value: Any, what: str, path: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (
            upper is not None and value > upper):
        bound = f" in [0, {upper}]" if upper is not None else " (a finite number >= 0)"
        raise ArtifactError(f"activity record {path}: {what} must be{bound}, got {value!r}")
    return float(value)


def read_activity(path: str | os.PathLike, weight_layers: int | None = None, fingerprint: str | None = None,
                  model_path: str | os.PathLike = "the model") -> Activity:
    """Load and validate. `fingerprint` (the model's `fingerprint()`) refuses a record measured on another
    model -- or one that does not say which model it was measured on; `weight_layers` (the model's count) is a
    second, coarser guard."""
    p = str(path)
    try:
        data = read_json(path, "activity JSON", ArtifactError)  # bounded, regular files only, strict JSON
    except ArtifactError as e:
        raise ArtifactError(f"activity record {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"activity record {p}: not a ternkit activity record (format tag {FORMAT!r} missing)")
    if data.get("version") != VERSION:
        raise ArtifactError(f"activity record {p}: version {data.get('version')!r} is not supported "
                            f"(this ternkit reads version {VERSION})")
    if fingerprint is not None:
        theirs = data.get(FINGERPRINT_KEY)
        if not isinstance(theirs, str):
            raise ArtifactError(f"activity record {p}: does not name the model it was measured on (no "
                                f"{FINGERPRINT_KEY!r}); rerun `ternkit simulate {model_path} -o {p}`")
        if theirs != fingerprint:
            raise ArtifactError(f"activity record {p}: was measured on another model than {model_path} "
                                f"(model fingerprint {theirs[:12]}..., this model {fingerprint[:12]}...)")
    backend = data.get("backend")
    if backend not in ("lava", "onnx"):
        raise ArtifactError(f"activity record {p}: backend must be 'lava' or 'onnx', got {backend!r}")
    samples = data.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ArtifactError(f"activity record {p}: samples must be a positive integer, got {samples!r}")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArtifactError(f"activity record {p}: layers must be a non-empty list")
    if weight_layers is not None and len(layers) != weight_layers:
        raise ArtifactError(f"activity record {p}: has {len(layers)} layers, the model has {weight_layers} "
                            "weight layers (a record of another model?)")
    clean = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ArtifactError(f"activity record {p}: layers[{i}] must be an object")
        row = {"index": i, "kind": str(layer.get("kind", ""))}
        for key in _LAYER_NUMBERS:
            if key not in layer:
                raise ArtifactError(f"activity record {p}: layers[{i}] misses {key!r}")
            row[key] = _number(layer[key], f"layers[{i}].{key}", p, 1.0 if key == "input_activation_sparsity" else None)
        clean.append(row)
    totals = {}
    for key in _TOTALS:
        if key not in data:
            raise ArtifactError(f"activity record {p}: misses total {key!r}")
        totals[key] = _number(data[key], key, p)
    optional = {}
    for key in ("accuracy", "agreement"):
        v = data.get(key)
        optional[key] = None if v is None else _number(v, key, p, 1.0)
    timesteps = data.get("timesteps")
    return Activity(p, backend, data.get("neuron") if isinstance(data.get("neuron"), str) else None,
                    timesteps if isinstance(timesteps, int) and not isinstance(timesteps, bool) else None,
                    samples, optional["accuracy"], optional["agreement"], clean,
                    totals["synaptic_ops_per_inference"], totals["neuron_updates_per_inference"],
                    totals["dense_macs_per_inference"])
