"""The NIR export as one call -- calibration data, thresholds, the graph -- shared by `ternkit export nir`,
`ternkit simulate --backend nir` and the pipeline; and the check that a .nir file belongs to a model."""

from __future__ import annotations

import json
from typing import Any

from ternkit.core import ArtifactError, OptionError, TernaryModel

from ..calibration import calibration_data
from .calibrate import calibrate as calibrate_neurons
from .graph import SpikingGraph, build_graph

__all__ = ["nir_graph_for", "check_graph_for", "check_timesteps", "MAX_TIMESTEPS"]

MAX_TIMESTEPS = 4096


def check_timesteps(timesteps: Any) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or not 1 <= timesteps <= MAX_TIMESTEPS:
        raise OptionError(f"--timesteps must be an integer in 1..{MAX_TIMESTEPS}, got {timesteps!r:.40}")
    return timesteps


def nir_graph_for(model: TernaryModel, *, timesteps: int = 32, integer_weights: bool = False,
                  calibrate: Any = None, where: str = "the model") -> SpikingGraph:
    """The calibrated spiking graph of `model`. `calibrate`: the data that sets the thresholds -- a dataset
    spec, an array of raw samples or a Dataset (default: the training part of the model's own bundled
    dataset); never the test set."""
    check_timesteps(timesteps)
    if getattr(model, "task", "classify") != "classify":
        raise OptionError(f"{where} is a {model.task} model: the NIR export rate-codes class scores (spike counts "
                          "are never negative); export it to onnx or c instead")
    build_graph(model, integer_weights=integer_weights, timesteps=timesteps)  # refusals before any data is read
    x, _, source = calibration_data(model, calibrate, where=where)
    neurons = calibrate_neurons(model, x, timesteps, integer_weights=integer_weights)
    graph = build_graph(model, neurons, integer_weights=integer_weights, timesteps=timesteps)
    graph.metadata.update({"model_fingerprint": model.fingerprint(), "calibration": source,
                           "neurons": {k: [v.theta, v.value] for k, v in neurons.items()}})
    return graph


def check_graph_for(graph: SpikingGraph, model: TernaryModel, graph_where: str, model_where: str) -> None:
    """Refuse a .nir file that was not exported from `model` (its fingerprint is in the metadata)."""
    theirs = graph.metadata.get("model_fingerprint")
    if not isinstance(theirs, str):
        raise ArtifactError(f"{graph_where} carries no ternkit model fingerprint, so it cannot be tied to "
                            f"{model_where}; export it with `ternkit export nir {model_where}`")
    if theirs != model.fingerprint():
        raise ArtifactError(f"{graph_where} was not exported from {model_where} (model fingerprints differ)")
    t = graph.metadata.get("timesteps")
    if isinstance(t, bool) or not isinstance(t, int | float) or int(t) != t or not 1 <= t <= MAX_TIMESTEPS:
        raise ArtifactError(f"{graph_where}: metadata timesteps {t!r:.40} is not an integer in 1..{MAX_TIMESTEPS}")
    graph.metadata["timesteps"] = int(t)


def summary(graph: SpikingGraph) -> str:
    kinds: dict[str, int] = {}
    for n in graph.nodes.values():
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in kinds.items() if k not in ("Input", "Output"))


def neurons_json(graph: SpikingGraph) -> str:
    return json.dumps(graph.metadata.get("neurons", {}))
