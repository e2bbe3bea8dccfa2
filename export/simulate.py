"""Run a model on a deployment backend and measure it: accuracy, agreement with the reference
(`TernaryModel.forward`), throughput and activity per inference, as one "ternkit-activity" record
(`ternkit.core.activity_schema`). `ternkit simulate` and the pipeline call `simulate`.

Backends are a table: a backend is one entry `BACKENDS[name] = Backend(run, require, options)`, where `run`
takes (model, data, **options) and returns the record, `require` checks (before any slow work) that what it
needs is installed, and `options` names the keyword options it accepts (others are refused in one line).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import Dataset, OptionError, TernaryModel, load_dataset
from ternkit.core.activity_schema import FINGERPRINT_KEY, record

__all__ = ["simulate", "simulation_data", "Backend", "BACKENDS", "register_backend"]


@dataclass(frozen=True)
class Backend:
    run: Callable[..., dict[str, Any]]
    require: Callable[[], Any] | None = None
    options: frozenset[str] = field(default_factory=frozenset)


BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, backend: Backend) -> None:
    BACKENDS[name] = backend


def simulation_data(model: TernaryModel, spec: str, limit: int | None = None) -> Dataset:
    """The dataset `spec` (N samples spread evenly over it with `limit`), checked against the model."""
    if limit is not None and limit < 1:
        raise OptionError(f"--limit must be at least 1, got {limit}")
    data = load_dataset(spec)
    if limit is not None:
        data = data.spread(limit)
    if data.shape != tuple(model.input.shape):
        raise OptionError(f"{spec} has samples of shape {data.shape}, the model expects {tuple(model.input.shape)}")
    if len(data.labels) > model.num_classes:
        raise OptionError(f"{spec} has {len(data.labels)} classes, the model only {model.num_classes}")
    return data


def simulate(model: TernaryModel, data: Dataset, backend: str = "lava", *, model_path: str | None = None,
             dataset: str | None = None, **options: Any) -> dict[str, Any]:
    """The activity record of running `data` through `model` on `backend` (see `BACKENDS` for each
    backend's options). `model_path` and `dataset` are recorded as provenance."""
    b = BACKENDS.get(backend)
    if b is None:
        raise OptionError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    given = {k for k, v in options.items() if v is not None and v is not False}
    if given - b.options:
        raise OptionError(f"{', '.join(sorted(given - b.options))} do not apply to backend {backend}")
    if b.require is not None:
        b.require()
    if len(data) == 0:
        raise OptionError("no samples to simulate")
    rec = b.run(model, data, **{k: v for k, v in options.items() if k in b.options})
    rec.update({"model": model_path, FINGERPRINT_KEY: model.fingerprint(), "dataset": dataset})
    return rec


def _scores(model: TernaryModel, data: Dataset, pred: np.ndarray) -> dict[str, float]:
    return {"accuracy": float((pred == data.y).mean()), "agreement": float((pred == model.predict(data.x)).mean())}


# ---------------------------------------------------------------------------------------------- lava
def _require_lava() -> None:
    from .lava.compat import require_lava

    require_lava()  # lava-nc is optional: say how to install it before loading anything


def _lava(model: TernaryModel, data: Dataset, *, graph: dict[str, Any] | None = None, neuron: str = "sigma-delta",
          timesteps: int = 32, fixed: bool = True, calibrate: str | None = None, percentile: str | float = 100,
          where: str = "the model", graph_where: str = "the graph") -> dict[str, Any]:
    """`graph`: simulate this (loaded) graph instead of building one; it must come from `model`."""
    from .lava.compat import lava_version
    from .lava.export import check_graph_for, lava_graph_for, weight_bits
    from .lava.sim import lava_activity, simulate_graph

    if graph is not None:
        if (graph["numerics"] == "fixed_pt") != fixed:
            raise OptionError(f"{graph_where} holds a {graph['numerics']} graph: "
                              f"{'add' if graph['numerics'] == 'floating_pt' else 'drop'} --float-sim")
        check_graph_for(graph, model, graph_where, where)
    else:
        graph = lava_graph_for(model, neuron=neuron, timesteps=timesteps, fixed=fixed, calibrate=calibrate,
                               percentile=percentile, where=where)
    run = simulate_graph(graph, data.x)
    return record(
        backend="lava", neuron=graph["neuron"], timesteps=graph["window"], samples=run.samples,
        **_scores(model, data, run.readout.argmax(1)), samples_per_second=run.samples_per_second,
        layers=lava_activity(graph, run), dense_macs=sum(e["connections"] for e in graph["entries"]),
        coding_timesteps=graph["timesteps"], numerics=graph["numerics"],
        steady_samples_per_second=run.steady_samples_per_second, startup_seconds=run.startup_seconds,
        run_seconds=run.run_seconds, chunks=run.chunks, calibration=graph.get("source"),
        lava_version=lava_version(), weight_bits=weight_bits(graph))


# ---------------------------------------------------------------------------------------------- onnx
def _onnx(model: TernaryModel, data: Dataset, *, nbits: bool = False) -> dict[str, Any]:
    """onnxruntime at batch 1 (and batched); activity counted from the reference activations. `nbits`: the
    MatMulNBits export (2-bit weights in RAM) instead of INT2."""
    from ternkit.core.metrics import operation_totals

    from .activity import activations_activity
    from .onnx.export import export_onnx
    from .onnx.infer import OnnxModel

    with tempfile.TemporaryDirectory(prefix="ternkit-sim-") as tmp:
        path = Path(tmp) / "model.onnx"
        written = export_onnx(model, path, "nbits" if nbits else "int2").format
        onnx = OnnxModel(path)
        onnx.forward(data.x[:1])  # warm-up: session start-up is not per-sample cost
        t0 = time.perf_counter()
        logits = np.concatenate([onnx.forward(data.x[i:i + 1]) for i in range(len(data))])
        t1 = time.perf_counter()
        onnx.predict(data.x)
        t2 = time.perf_counter()
    layers = activations_activity(model, data.x)[0]
    return record(
        backend="onnx", neuron=None, timesteps=1, samples=len(data), **_scores(model, data, logits.argmax(1)),
        samples_per_second=len(data) / max(t1 - t0, 1e-9), layers=layers,
        dense_macs=operation_totals(model)["connections"],
        batched_samples_per_second=len(data) / max(t2 - t1, 1e-9),
        weights=written)


register_backend("onnx", Backend(_onnx, options=frozenset({"nbits"})))
register_backend("lava", Backend(_lava, _require_lava, frozenset(
    {"graph", "neuron", "timesteps", "fixed", "calibrate", "percentile", "where", "graph_where"})))


# ---------------------------------------------------------------------------------------------- C (c_sim)
def _c_backend(name: str) -> Backend:
    """The C export built with the host cc (`c`) or cross-built for a Cortex-M4 and run in qemu
    (`cortex-m4`); `build` keeps the build directory (measured figures for `ternkit report --build`)."""
    def run(model: TernaryModel, data: Dataset, **options: Any) -> dict[str, Any]:
        from .c.sim import run_backend

        return run_backend(name, model, data, **options)

    def require() -> None:
        from .c.build import require_tools

        require_tools(name)

    return Backend(run, require, frozenset({"calibrate", "build", "where"}))


for _name in ("c", "cortex-m4"):
    register_backend(_name, _c_backend(_name))
