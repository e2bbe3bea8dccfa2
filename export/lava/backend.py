"""The Lava backend as a unit (`ternkit.export.backend`): export the process graph (JSON; needs no lava-nc)
and simulate it in Lava's Loihi 2 simulator (needs lava-nc). The planner, numerics and graph stay in
plan.py / numerics.py / graph.py; the refusals are the planner's own hints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ternkit.core import ArtifactError, Dataset, OptionError, TernaryModel
from ternkit.core.activity_schema import record

from ..backend import Backend, Option, Written, register
from .plan import HINTS

__all__ = ["BACKEND", "export_lava"]


def _handlers() -> dict[str, Any]:
    from .plan import HANDLERS

    return HANDLERS


def _prepare(options: dict[str, Any]) -> dict[str, Any]:
    """`--graph FILE` read and checked (it needs no lava-nc), so a bad file is answered as bad input."""
    graph = options.get("graph")
    if graph is None or isinstance(graph, dict):
        return options
    from .graph import load_graph

    return {**options, "graph": load_graph(graph), "graph_where": str(graph)}


def _require(stage: str) -> None:
    if stage == "simulate":  # the exported graph is plain JSON; only running it needs lava-nc
        from .compat import require_lava

        require_lava()


def export_lava(model: TernaryModel, out: str | os.PathLike, *, neuron: str = "sigma-delta", timesteps: int = 32,
                fixed: bool = True, calibrate: Any = None, percentile: str | float = 100,
                where: str = "the model") -> dict[str, Any]:
    """Write the Lava process graph of `model` to `out` (.json) and return it. `calibrate`: the data that
    sets units and thresholds -- a dataset spec, an array of raw samples or a Dataset (default: the training
    part of the model's own bundled dataset)."""
    from ternkit.core.atomic import check_writable

    from .export import lava_graph_for
    from .graph import save_graph

    if not str(out).endswith(".json"):
        raise OptionError(f"-o {out}: the output file name must end in .json (e.g. model.lava.json)")
    check_writable(out)  # before calibration, not after
    graph = lava_graph_for(model, neuron=neuron, timesteps=timesteps, fixed=fixed, calibrate=calibrate,
                           percentile=percentile, where=where)
    save_graph(graph, out)
    return graph


def _export(model: TernaryModel, out: str, *, where: str = "the model", **options: Any) -> Written:
    from .export import weight_bits

    graph = export_lava(model, out, where=where, **options)
    bits = sorted(set(weight_bits(graph)) - {None})
    return Written((Path(out),), f"wrote {out} ({graph['numerics']}, {graph['neuron']} neurons, "
                   f"{len(graph['populations'])} populations, "
                   f"{sum(len(p['synapses']) for p in graph['populations'])} synapse groups, "
                   f"{graph['window']} timesteps per sample (+{graph['latency']} latency), weight bits "
                   f"{bits or 'float'}; calibrated on {graph['source']})", graph)


def _simulate(model: TernaryModel, data: Dataset, *, where: str = "the model",
              graph: str | os.PathLike | dict[str, Any] | None = None,
              neuron: str = "sigma-delta", timesteps: int = 32, fixed: bool = True, calibrate: Any = None,
              percentile: str | float = 100, graph_where: str | None = None) -> dict[str, Any]:
    """`graph`: simulate this exported graph (a path, or a loaded graph) instead of building one; it must come
    from `model`. `graph_where`: the graph's file, for messages, where `_prepare` loaded it."""
    from .compat import lava_version
    from .export import check_graph_for, lava_graph_for, weight_bits
    from .graph import load_graph
    from .sim import lava_activity, simulate_graph

    if graph is not None:
        graph_where = graph_where or ("the graph" if isinstance(graph, dict) else str(graph))
        if not isinstance(graph, dict):
            graph = load_graph(graph)
        if (graph["numerics"] == "fixed_pt") != fixed:
            raise OptionError(f"{graph_where} holds a {graph['numerics']} graph: "
                              f"{'add' if graph['numerics'] == 'floating_pt' else 'drop'} --float-sim")
        check_graph_for(graph, model, graph_where, where)
    else:
        graph = lava_graph_for(model, neuron=neuron, timesteps=timesteps, fixed=fixed, calibrate=calibrate,
                               percentile=percentile, where=where)
    if not isinstance(graph, dict):
        raise ArtifactError("not a Lava graph")
    run = simulate_graph(graph, data.x)
    pred = run.readout.argmax(1)
    return record(
        backend="lava", neuron=graph["neuron"], timesteps=graph["window"], samples=run.samples,
        accuracy=float((pred == data.y).mean()), agreement=float((pred == model.predict(data.x)).mean()),
        samples_per_second=run.samples_per_second,
        layers=lava_activity(graph, run), dense_macs=sum(e["connections"] for e in graph["entries"]),
        coding_timesteps=graph["timesteps"], numerics=graph["numerics"],
        steady_samples_per_second=run.steady_samples_per_second, startup_seconds=run.startup_seconds,
        run_seconds=run.run_seconds, chunks=run.chunks, calibration=graph.get("source"),
        lava_version=lava_version(), weight_bits=weight_bits(graph))


_CALIBRATE = Option("--calibrate", "data that sets units and thresholds (default: the training part of the model's "
                    "dataset, if it is a bundled one: iris, digits, mnist-sample)", metavar="DATASET")
_GRAPH_OPTIONS = (
    Option("--neuron", "sigma-delta: graded-spike ReLU neurons (exact); if: rate-coded integrate-and-fire",
           choices=("sigma-delta", "if"), default="sigma-delta"),
    Option("--timesteps", "rate-coding timesteps per sample for --neuron if (default 32)", type=int, default=32),
    _CALIBRATE,
    Option("--percentile", "threshold balancing for --neuron if: this percentile of each layer's activations "
           "(default 100: the maximum), or 'auto': the best of 100..95 on held-out calibration data", default="100"),
)

BACKEND = register(Backend(
    name="lava", title="Lava", summary="export the Lava process graph (JSON) of a ternary model",
    description="Map a .tern model to Lava processes (Dense/Conv synapses, sigma-delta or integrate-and-fire "
    "neurons, a readout) with fixed-point parameters for Loihi 2, and write the graph as JSON. Units, shifts and "
    "thresholds are set from calibration data.",
    handlers=_handlers, refusals=HINTS, export=_export, simulate=_simulate, require=_require, prepare=_prepare,
    out_help="the .lava.json file to write", out_name="model.lava.json",
    export_options=(*_GRAPH_OPTIONS, Option(
        "--float", "write the floating-point graph (Lava's floating_pt models) instead of fixed point",
        dest="fixed", switch=True, const=False, default=True)),
    simulate_options=(*_GRAPH_OPTIONS, Option(
        "--float-sim", "Lava floating-point models instead of fixed point", dest="fixed", switch=True, const=False,
        default=True), Option("--graph", "simulate this exported graph instead of building one",
                              metavar="G.lava.json")),
))
