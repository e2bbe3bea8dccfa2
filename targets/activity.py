"""Read the activity record `ternkit simulate` writes (JSON), and check it belongs to the model it is used with.

The record is data, not code from another package: targets never import the simulator, it only reads what a
run measured (messages, synaptic operations, neuron updates, activation sparsity per node with connections).
The schema itself -- fields, version, validation -- is declared once, in `ternkit.core.activity_schema`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ternkit.core.activity_schema import FINGERPRINT_KEY, FORMAT, VERSION, check_header, parse
from ternkit.core.errors import ArtifactError
from ternkit.core.readers import read_json

__all__ = ["Activity", "read_activity", "FORMAT", "VERSION", "FINGERPRINT_KEY"]


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


def read_activity(path: str | os.PathLike, weight_layers: int | None = None, fingerprint: str | None = None,
                  model_path: str | os.PathLike = "the model") -> Activity:
    """Load and validate. `fingerprint` (the model's `fingerprint()`) refuses a record measured on another
    model -- or one that does not say which model it was measured on; `weight_layers` (the model's number of
    record entries, `len(ternkit.core.metrics.synaptic_nodes(model))`) is a second, coarser guard."""
    p = str(path)
    try:
        data = read_json(path, "activity JSON", ArtifactError)  # bounded, regular files only, strict JSON
    except ArtifactError as e:
        raise ArtifactError(f"activity record {e}") from None
    check_header(data, p)  # the schema lives in ternkit.core.activity_schema
    if fingerprint is not None:
        theirs = data.get(FINGERPRINT_KEY)
        if not isinstance(theirs, str):
            raise ArtifactError(f"activity record {p}: does not name the model it was measured on (no "
                                f"{FINGERPRINT_KEY!r}); rerun `ternkit simulate {model_path} -o {p}`")
        if theirs != fingerprint:
            raise ArtifactError(f"activity record {p}: was measured on another model than {model_path} "
                                f"(model fingerprint {theirs[:12]}..., this model {fingerprint[:12]}...)")
    fields = parse(data, p)
    layers = fields.pop("layers")
    fields.pop("fingerprint")
    if weight_layers is not None and len(layers) != weight_layers:
        raise ArtifactError(f"activity record {p}: has {len(layers)} layers, the model has {weight_layers} "
                            "weight layers and other nodes with connections (a record of another model?)")
    return Activity(p, layers=layers, **fields)
