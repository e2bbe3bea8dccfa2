"""The Lava export as one call: calibration data, the integrate-and-fire threshold percentile (a number or
'auto'), the graph -- what `ternkit export lava`, `ternkit simulate` and the pipeline share."""

from __future__ import annotations

from typing import Any

import numpy as np

from ternkit.core import ArtifactError, OptionError, TernaryModel, UnsupportedError

from ..calibration import calibration_data

__all__ = ["lava_graph_for", "parse_percentile", "check_graph_for", "weight_bits"]


def parse_percentile(value: str | float) -> tuple[float, bool]:
    """(percentile, auto) from '100', 99.5 or 'auto'; OptionError (one line) otherwise."""
    if value == "auto":
        return 100.0, True
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"--percentile must be a number in (0, 100] or 'auto', got {value!r}"[:200]) from None
    if not 0 < p <= 100:
        raise OptionError(f"--percentile must be in (0, 100], got {value}")
    return p, False


def lava_graph_for(model: TernaryModel, *, neuron: str = "sigma-delta", timesteps: int = 32, fixed: bool = True,
                   calibrate: str | None = None, percentile: str | float = 100, where: str = "the model",
                   ) -> dict[str, Any]:
    """The Lava graph of `model`, calibrated on `calibrate` (default: its training split, see
    `calibration_data`); percentile 'auto' picks the best threshold percentile on held-out calibration data."""
    from .graph import build_graph, choose_percentile

    if model.task != "classify":
        raise UnsupportedError(f"{where} is a {model.task} model: the Lava export reads out class decisions (spike "
                               "counts), not values; deploy it with ONNX or C")
    p, auto = parse_percentile(percentile)
    x, held_out, spec = calibration_data(model, calibrate, held_out=1000 if auto else 0, where=where)
    if auto and neuron == "if":
        p = choose_percentile(model, x, held_out, timesteps, fixed=fixed)
    return build_graph(model, x, neuron=neuron, timesteps=timesteps, fixed=fixed, percentile=p, source=spec)


def check_graph_for(graph: dict[str, Any], model: TernaryModel, graph_where: str, model_where: str) -> None:
    """Refuse a graph exported from another model (fingerprint; version-1 graphs: labels, shape, entries)."""
    from ternkit.core.metrics import synaptic_nodes

    theirs = graph.get("model_fingerprint")
    if isinstance(theirs, str):
        if theirs != model.fingerprint():
            raise ArtifactError(f"{graph_where} was not exported from {model_where} (model fingerprints differ)")
        return
    if graph.get("upgraded_from") != 1:  # every version-2 graph is written with its model's fingerprint
        raise ArtifactError(f"{graph_where} carries no model fingerprint, so it cannot be tied to {model_where}; "
                            f"export it again with `ternkit export lava {model_where}`")
    if graph["labels"] != list(model.labels) or graph["input"]["shape"] != list(model.input.shape):
        raise ArtifactError(f"{graph_where} was not exported from {model_where} (labels or input shape differ)")
    if [e["index"] for e in graph["entries"]] != synaptic_nodes(model):
        raise ArtifactError(f"{graph_where} does not match the layers of {model_where}")
    for p in graph["populations"]:  # a version-1 chain: each population's weights are one node's, zeros kept
        syn, op = p["synapses"][0], model.nodes[p["synapses"][0]["index"]].op
        if op.has_weights and int(np.count_nonzero(syn["weights"])) != int(np.count_nonzero(op.weight)):
            raise ArtifactError(f"{graph_where} was not exported from {model_where} (the weights of node "
                                f"{model.nodes[syn['index']].name} differ)")


def weight_bits(graph: dict[str, Any]) -> list[int | None]:
    """Weight bits of every synapse process, in order (None: floating point)."""
    return [s["num_weight_bits"] for p in graph["populations"] for s in p["synapses"]]
