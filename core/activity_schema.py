"""The activity record ("ternkit-activity", version 1), declared once: what a simulation writes and the
report reads -- the writer helpers (`entry`, `record`) used by `export/` and the validating parser (`parse`)
used by `targets/`. It is a contract between packages that never import each other (docs/targets.md).

One entry per node that has connections (`metrics.synaptic_nodes`: weight operations, pooling, add, concat),
in node order; for a chain of dense/conv layers that is one entry per weight layer. All numbers are per
inference (means over the samples). Synaptic operations skip zeros: a message from input element j costs
the connections with a non-zero weight it reaches, so `synaptic_ops / dense_macs` is the sparsity an
event-driven chip exploits; `dense_macs_per_inference` is `sum(model.counts().connections)` over the entries.

The backend that wrote a record is a name that matches `BACKEND_NAME`, not one of a closed list: the backends
are registered above core (ternkit.export's registry, or a third party's entry point), core imports nothing
above it, and a record measured on a machine with a plugin installed must still report on one without it. The
report reads only the counts, which are the same for every backend.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import ArtifactError

__all__ = ["FORMAT", "VERSION", "FINGERPRINT_KEY", "BACKEND_NAME", "ENTRY_FIELDS", "OPTIONAL_ENTRY_FIELDS",
           "TOTAL_FIELDS", "MAX_ENTRIES", "entry", "record", "check_header", "parse"]

FORMAT = "ternkit-activity"
VERSION = 1
FINGERPRINT_KEY = "model_fingerprint"  # TernaryModel.fingerprint() of the model the record was measured on
BACKEND_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # "lava", "cortex-m4", "nir": what a backend may be called
ENTRY_FIELDS = ("neurons", "fan_out", "messages_per_inference", "synaptic_ops_per_inference",
                "neuron_updates_per_inference", "input_activation_sparsity")
TOTAL_FIELDS = ("synaptic_ops_per_inference", "neuron_updates_per_inference", "dense_macs_per_inference")
OPTIONAL_ENTRY_FIELDS = ("connections", "nonzero_connections")  # model.counts() of the node, when known
MAX_ENTRIES = 100_000  # far more nodes than an edge model has; bounds the work a hostile record causes


def entry(index: int, kind: str, *, neurons: int, fan_out: float, messages: float, synaptic_ops: float,
          neuron_updates: float, input_activation_sparsity: float, node: str | None = None,
          connections: int | None = None, nonzero_connections: int | None = None) -> dict[str, Any]:
    """One entry (all numbers per inference). `fan_out` is the mean non-zero connections per input element;
    `connections` / `nonzero_connections` are the node's `model.counts()` (optional: a simulator that only
    knows its synapses writes what it knows)."""
    e = {"index": int(index), "kind": str(kind), "neurons": int(neurons), "fan_out": float(fan_out),
         "messages_per_inference": float(messages), "synaptic_ops_per_inference": float(synaptic_ops),
         "neuron_updates_per_inference": float(neuron_updates),
         "input_activation_sparsity": float(input_activation_sparsity)}
    if node is not None:
        e["node"] = str(node)
    for key, v in (("connections", connections), ("nonzero_connections", nonzero_connections)):
        if v is not None:
            e[key] = int(v)
    return e


def record(*, backend: str, neuron: str | None, timesteps: int, samples: int, accuracy: float | None,
           agreement: float | None, samples_per_second: float, layers: list[dict[str, Any]], dense_macs: int,
           **extra: Any) -> dict[str, Any]:
    """The whole record; totals are the sums of the entries. `extra` (provenance: model, dataset, the
    fingerprint under FINGERPRINT_KEY, timings) is kept as given."""
    nonzero = ({"nonzero_connections_per_inference": int(sum(e["nonzero_connections"] for e in layers))}
               if layers and all("nonzero_connections" in e for e in layers) else {})
    return {"format": FORMAT, "version": VERSION, "backend": backend, "neuron": neuron,
            "timesteps": int(timesteps), "samples": int(samples), "accuracy": accuracy, "agreement": agreement,
            "samples_per_second": samples_per_second, "layers": layers,
            "synaptic_ops_per_inference": float(sum(e["synaptic_ops_per_inference"] for e in layers)),
            "neuron_updates_per_inference": float(sum(e["neuron_updates_per_inference"] for e in layers)),
            "dense_macs_per_inference": int(dense_macs), **nonzero, **extra}


def _number(value: Any, what: str, where: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (
            upper is not None and value > upper):
        bound = f" in [0, {upper}]" if upper is not None else " (a finite number >= 0)"
        raise ArtifactError(f"activity record {where}: {what} must be{bound}, got {value!r}"[:300])
    return float(value)


def check_header(data: Any, where: str) -> dict[str, Any]:
    """The format tag and version, before anything else is trusted."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"activity record {where}: not a ternkit activity record (format tag {FORMAT!r} missing)")
    if data.get("version") != VERSION:
        raise ArtifactError(f"activity record {where}: version {data.get('version')!r:.40} is not supported "
                            f"(this ternkit reads version {VERSION})")
    return data


def parse(data: Any, where: str) -> dict[str, Any]:
    """Validate a decoded record; returns the fields a report uses (one-line ArtifactError on any breach):
    backend, neuron, timesteps, samples, accuracy, agreement, layers (clean entries), synaptic_ops,
    neuron_updates, dense_macs, fingerprint."""
    data = check_header(data, where)
    backend = data.get("backend")
    if not isinstance(backend, str) or len(backend) > 40 or not BACKEND_NAME.fullmatch(backend):
        raise ArtifactError(f"activity record {where}: backend must be a backend name (lower case letters, digits, "
                            f"'-'), got {backend!r:.40}")
    samples = data.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ArtifactError(f"activity record {where}: samples must be a positive integer, got {samples!r:.40}")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArtifactError(f"activity record {where}: layers must be a non-empty list")
    if len(layers) > MAX_ENTRIES:
        raise ArtifactError(f"activity record {where}: {len(layers)} layers is more than the {MAX_ENTRIES} limit")
    clean = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ArtifactError(f"activity record {where}: layers[{i}] must be an object")
        row: dict[str, Any] = {"index": i, "kind": str(layer.get("kind", ""))[:40]}
        if isinstance(layer.get("node"), str):
            row["node"] = layer["node"][:200]
        for key in ENTRY_FIELDS:
            if key not in layer:
                raise ArtifactError(f"activity record {where}: layers[{i}] misses {key!r}")
            row[key] = _number(layer[key], f"layers[{i}].{key}", where,
                               1.0 if key == "input_activation_sparsity" else None)
        for key in OPTIONAL_ENTRY_FIELDS:
            if key in layer:
                row[key] = _number(layer[key], f"layers[{i}].{key}", where)
        clean.append(row)
    totals = {}
    for key in TOTAL_FIELDS:
        if key not in data:
            raise ArtifactError(f"activity record {where}: misses total {key!r}")
        totals[key] = _number(data[key], key, where)
    optional = {}
    for key in ("accuracy", "agreement"):
        v = data.get(key)
        optional[key] = None if v is None else _number(v, key, where, 1.0)
    timesteps = data.get("timesteps")
    neuron = data.get("neuron")
    fingerprint = data.get(FINGERPRINT_KEY)
    return {"backend": backend, "neuron": neuron[:40] if isinstance(neuron, str) else None,
            "timesteps": timesteps if isinstance(timesteps, int) and not isinstance(timesteps, bool) else None,
            "samples": samples, "accuracy": optional["accuracy"], "agreement": optional["agreement"],
            "layers": clean, "synaptic_ops": totals["synaptic_ops_per_inference"],
            "neuron_updates": totals["neuron_updates_per_inference"],
            "dense_macs": totals["dense_macs_per_inference"],
            "fingerprint": fingerprint if isinstance(fingerprint, str) else None}
