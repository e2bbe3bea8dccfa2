"""Assemble one report: memory, operation counts and per-target energy of a model, with the float baseline.

The result is a plain dict (what report.json holds); rendering it is `render.py`'s job.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core.errors import ArtifactError
from ternkit.core.metrics import synaptic_nodes
from ternkit.core.model import TernaryModel

from .activity import Activity
from .energy import dense_alternative, estimate, float_baseline
from .measured import measured_fit
from .memory import fit, model_memory
from .ops import count_ops, totals
from .spec import Target, load_target

__all__ = ["build_report", "FORMAT", "VERSION", "UNITS", "AGREEMENT_WARN"]

AGREEMENT_WARN = 0.99  # below this, a simulation's activity is flagged as unrepresentative

FORMAT = "ternkit-report"
VERSION = 1
UNITS = {"energy": "pJ per inference (1 nJ = 1,000 pJ)", "memory": "bytes unless a field says bits",
         "operations": "count per inference (mean over the samples measured)", "sparsity": "fraction in [0, 1]",
         "ratio_vs_float": "ternary energy on the target / float32 baseline energy on cpu-fp32",
         "savings_vs_float": "float32 baseline energy / ternary energy on the target"}

NEUROBENCH_NOTES = [
    "footprint: NeuroBench counts every parameter held in a float32 tensor as 4 bytes (neurobench_footprint_bytes); "
    "we count what is stored (parameter_bytes: 2-bit packed trits, float32 scales and biases).",
    "connection_sparsity and activation_sparsity follow NeuroBench: zero weights / all weights, zero activations / "
    "all outputs of activation layers (here: the inputs of every weight layer after the first).",
    "synaptic operations: dense = every connection (padding excluded); effective_macs = connections whose weight and "
    "input activation are both non-zero. NeuroBench calls an operation an AC only when its input is a binary spike; "
    "our inputs are real-valued, so effective_acs is 0 by that definition, although a ternary weight executes every "
    "effective MAC as an add or subtract (executed_as_accumulates).",
]


def build_report(model: TernaryModel, targets: list[Target], *, x: np.ndarray | None = None,
                 activity: Activity | None = None, model_path: str = "", dataset: str | None = None,
                 baseline: Target | None = None, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a reader needs to trust (or redo) the estimates: counts, constants, sources, assumptions."""
    model.validate()
    if activity is not None and len(activity.layers) != len(synaptic_nodes(model)):
        raise ArtifactError(f"activity record {activity.path} has {len(activity.layers)} layers, the model "
                            f"{len(synaptic_nodes(model))} nodes with connections")
    ops = count_ops(model, x)
    tot = totals(ops)
    memory = model_memory(model, ops)
    baseline = baseline or load_target("cpu-fp32")
    base = float_baseline(baseline, model, ops)
    ternary = model.kind == "ternary" and model.levels == 1
    warnings = []
    if activity is not None and activity.agreement is not None and activity.agreement < AGREEMENT_WARN:
        warnings.append(f"the {activity.backend} simulation in {activity.path} agreed with the reference on only "
                        f"{100 * activity.agreement:.1f} % of {activity.samples} samples: its activity counts may not "
                        "represent this model")
    if activity is not None and x is None:
        warnings.append("no data: von Neumann operation counts are structural (every input counted as non-zero)")
    rows = []
    for t in targets:
        e = estimate(t, model, ops, memory, activity)
        e["float_baseline_pj"] = base["per_inference_pj"]
        e["ratio_vs_float"] = e["per_inference_pj"] / base["per_inference_pj"]
        e["savings_vs_float"] = base["per_inference_pj"] / e["per_inference_pj"] if e["per_inference_pj"] else None
        e["dense_alternative"] = dense_alternative(t, model, ops)
        rows.append({"name": t.name, "description": t.description, "kind": t.kind, "fit": fit(t, model, memory, ops),
                     "energy": e, "assumptions": list(t.assumptions), "spec": t.as_dict()})
        if measured is not None and t.kind == "mcu":  # a real build's flash/RAM beside the estimate
            rows[-1]["measured"] = measured_fit(t, rows[-1]["fit"], measured)
    return {
        "format": FORMAT, "version": VERSION, "units": UNITS, "warnings": warnings,
        "model": {"path": model_path, "kind": model.kind, "levels": model.levels,
                  "architecture": [layer.kind for layer in model.layers], "input_shape": list(model.input.shape),
                  "provenance": {k: model.provenance.get(k) for k in ("dataset", "method", "seed", "ternkit_version")
                                 if k in model.provenance}},
        "data": {"dataset": dataset, "samples": int(len(x))} if x is not None else None,
        "activity": activity.summary() if activity is not None else None,
        "memory": memory,
        "operations": {"layers": [o.as_dict() for o in ops], "totals": tot},
        "neurobench": {
            "footprint_bytes": memory["neurobench_footprint_bytes"], "stored_bytes": memory["parameter_bytes"],
            "connection_sparsity": tot["connection_sparsity"],
            "activation_sparsity": tot["activation_sparsity"] if tot["measured"] else None,
            "synaptic_operations": {"dense": tot["dense_macs"],
                                    "effective_macs": tot["effective_macs"] if tot["measured"] else None,
                                    "effective_acs": 0.0,
                                    "executed_as_accumulates": (tot["effective_macs"] if tot["measured"] else None)
                                    if ternary else 0.0},
            "notes": NEUROBENCH_NOTES},
        "float_baseline": base,
        "targets": rows,
    }
