"""The NIR backend as a unit (`ternkit.export.backend`): export the rate-coded spiking network as a .nir file
(needs the optional `nir` package, `ternkit[nir]`) and simulate it in ternkit's own numpy simulator of the NIR
equations (needs nothing extra; `--graph` runs an exported file, which needs `nir` to read)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ternkit.core import Dataset, OptionError, TernaryModel
from ternkit.core.activity_schema import record

from ..backend import Backend, Option, Written, register
from .graph import HINTS

__all__ = ["BACKEND", "export_nir", "simulate_nir"]


def _handlers() -> dict[str, Any]:
    from .graph import HANDLERS

    return HANDLERS


def _require(stage: str) -> None:
    if stage == "export":  # only files need `nir`: the simulator runs ternkit's own graph
        from .nirfile import require_nir

        require_nir()


def export_nir(model: TernaryModel, out: str | os.PathLike, *, timesteps: int = 32, integer_weights: bool = False,
               calibrate: Any = None, where: str = "the model") -> Any:
    """Write the NIR graph of `model` to `out` (.nir, HDF5) and return ternkit's form of it (`SpikingGraph`).
    `calibrate`: the data that sets the thresholds -- a dataset spec, raw samples or a Dataset (default: the
    training part of the model's own bundled dataset). `integer_weights`: weights q in {-1, 0, 1}, the scales
    moved into thresholds and biases (for chips with integer synapses)."""
    from ternkit.core.atomic import check_writable

    from .export import nir_graph_for
    from .nirfile import require_nir, write_nir

    if not str(out).endswith(".nir"):
        raise OptionError(f"-o {out}: the output file name must end in .nir (e.g. model.nir)")
    require_nir()
    check_writable(out)  # before calibration, not after
    graph = nir_graph_for(model, timesteps=timesteps, integer_weights=integer_weights, calibrate=calibrate,
                          where=where)
    write_nir(graph, out)
    return graph


def _export(model: TernaryModel, out: str, *, where: str = "the model", **options: Any) -> Written:
    from .export import summary

    graph = export_nir(model, out, where=where, **options)
    m = graph.metadata
    return Written((Path(out),), f"wrote {out} (NIR: {summary(graph)}; "
                   f"{'integer' if m['integer_weights'] else 'a*q'} weights, {m['timesteps']} timesteps, "
                   f"IF neurons with reset to zero; calibrated on {m['calibration']})", graph)


def simulate_nir(model: TernaryModel, data: Dataset, *, where: str = "the model",
                 graph: Any = None, timesteps: int = 32, integer_weights: bool = False,
                 calibrate: Any = None) -> dict[str, Any]:
    """The activity record of `data` through the NIR graph of `model` (built and calibrated, or `graph`: an
    exported .nir file or a SpikingGraph from `model`), run by ternkit's simulator of the NIR equations."""
    from ..activity import dense_macs
    from .activity import nir_activity
    from .export import check_graph_for, nir_graph_for
    from .graph import SpikingGraph
    from .nirfile import nir_version, read_nir
    from .sim import run_batches

    if graph is not None:
        graph_where = "the graph" if isinstance(graph, SpikingGraph) else str(graph)
        if not isinstance(graph, SpikingGraph):
            graph = read_nir(graph)
        check_graph_for(graph, model, graph_where, where)
    else:
        graph = nir_graph_for(model, timesteps=timesteps, integer_weights=integer_weights, calibrate=calibrate,
                              where=where)
    steps = int(graph.metadata["timesteps"])
    x = model.input.normalise(data.x)
    t0 = time.perf_counter()
    run = run_batches(graph, x, steps)
    seconds = time.perf_counter() - t0
    pred = run.counts.argmax(1)
    ref = model.predict(data.x)
    return record(
        backend="nir", neuron="if", timesteps=steps, samples=len(data),
        accuracy=float((pred == data.y).mean()), agreement=float((pred == ref).mean()),
        samples_per_second=len(data) / max(seconds, 1e-9), layers=nir_activity(model, graph, run),
        dense_macs=dense_macs(model), output_spikes_per_inference=float(run.counts.sum()) / len(data),
        spikes_per_inference=float(sum(s.sum() for s in run.spikes.values())) / len(data),
        integer_weights=bool(graph.metadata.get("integer_weights")), calibration=graph.metadata.get("calibration"),
        reset="zero", simulator="ternkit numpy (NIR equations)", nir_version=nir_version())


def _notes(rec: dict[str, Any]) -> str:
    return (f"  NIR IF neurons (reset to zero), {rec['timesteps']} timesteps, "
            f"{rec['spikes_per_inference']:.0f} spikes per inference ({rec['output_spikes_per_inference']:.1f} "
            f"output); {'integer' if rec['integer_weights'] else 'a*q'} weights")


_TIMESTEPS = Option("--timesteps", "rate-coding timesteps per sample (default 32); the thresholds are calibrated "
                    "for this T", type=int, default=32)
_CALIBRATE = Option("--calibrate", "data that sets units and thresholds (default: the training part of the model's "
                    "dataset, if it is a bundled one: iris, digits, mnist-sample)", metavar="DATASET")
_INTEGER = Option("--integer-weights", "weights q in {-1, 0, 1} with each layer's scale moved into the neurons' "
                  "thresholds and biases (chips with integer synapses)", switch=True, default=False)

BACKEND = register(Backend(
    name="nir", title="NIR", summary="export the spiking network as NIR (IF neurons) for Norse, SpiNNaker2, ...",
    description="Map a .tern model to a rate-coded spiking network in the Neuromorphic Intermediate "
    "Representation (NIR): Affine/Conv2d synapses, IF neurons (reset to zero) with calibrated thresholds, "
    "SumPool2d for average pooling, residual edges; T and the input encoding are in the file's metadata. "
    "Read by Norse, snnTorch, Sinabs, Rockpool, Spyx, Nengo, lava-dl and SpiNNaker2's tools.",
    handlers=_handlers, refusals=HINTS, export=_export, simulate=simulate_nir, require=_require,
    out_help="the .nir file to write", notes=_notes,
    agreement=0.7,  # rate coding at T = 32 on untrained example models, whose logits nearly tie (trained: >= 97 %)
    export_options=(_TIMESTEPS, _CALIBRATE, _INTEGER),
    simulate_options=(_TIMESTEPS, _CALIBRATE, _INTEGER,
                      Option("--graph", "simulate this exported graph instead of building one", metavar="M.nir")),
))
