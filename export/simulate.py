"""Run a model on a registered backend and measure it: accuracy, agreement with the reference
(`TernaryModel.forward`), throughput and activity per inference, as one "ternkit-activity" record
(`ternkit.core.activity_schema`). `ternkit simulate` and the pipeline call `simulate`; each backend's own run is
its `Backend.simulate` (`ternkit.export.backend`)."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ternkit.core import Dataset, OptionError, TernaryModel, load_dataset, load_model
from ternkit.core.activity_schema import FINGERPRINT_KEY
from ternkit.core.data import DatasetLike

from .backend import get, given_options

__all__ = ["simulate", "simulation_data", "simulation_text"]


def simulation_data(model: TernaryModel, spec: DatasetLike, limit: int | None = None) -> Dataset:
    """The dataset `spec` (N samples spread evenly over it with `limit`), checked against the model."""
    if limit is not None and limit < 1:
        raise OptionError(f"--limit must be at least 1, got {limit}")
    data = load_dataset(spec, None if model.task == "classify" else model.task)
    if limit is not None:
        data = data.spread(limit)
    name = spec if isinstance(spec, str) else "the data"
    if data.shape != tuple(model.input.shape):
        raise OptionError(f"{name} has samples of shape {data.shape}, the model expects {tuple(model.input.shape)}")
    if model.task == "classify" and len(data.labels) > model.num_classes:
        raise OptionError(f"{name} has {len(data.labels)} classes, the model only {model.num_classes}")
    return data


def simulate(model: TernaryModel | str | os.PathLike, data: DatasetLike, backend: str = "lava", *,
             model_path: str | None = None, dataset: str | None = None, limit: int | None = None,
             out: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    """The activity record of running `data` through `model` on `backend`.

    `model`: a TernaryModel or a .tern path; `data`: a Dataset, a dataset spec (with `limit`: N samples spread
    over it) or arrays; `options`: the backend's simulate options (`Backend.simulate_options`, by dest); others
    are refused in one line. `model_path` and `dataset` are recorded as provenance (filled in from the path and
    the spec when given as such); `out`: also write the record there (.json; checked before the run)."""
    from ternkit.core.atomic import check_writable, write_text

    b = get(backend)
    if b.simulate is None:
        raise OptionError(f"backend {backend} only exports; simulate on one of the others")
    given = given_options(b, "simulate", options)
    if out is not None and not str(out).endswith(".json"):
        raise OptionError(f"-o {out}: the activity file name must end in .json")
    if not isinstance(model, TernaryModel):
        model_path = model_path or str(model)
        model = load_model(model)
    if out is not None:
        check_writable(out)  # before the simulation, not after
    if b.prepare is not None:  # the files its options name: checked as input, before the dependency check
        given = b.prepare(given)
    b.check_require("simulate")  # optional dependencies: one line on how to install them, before any work
    if isinstance(data, str):
        dataset = dataset or data
    data = simulation_data(model, data, limit)  # checked against the model in every form
    if len(data) == 0:
        raise OptionError("no samples to simulate")
    if model.task != "classify":  # backends score class decisions: give them none (values: see evaluate)
        data = Dataset(data.x, np.zeros(len(data), np.int64), ["0"], data.name)
    rec = b.simulate(model, data, where=model_path or "the model", **given)
    rec.update({"model": model_path, FINGERPRINT_KEY: model.fingerprint(), "dataset": dataset})
    if model.task != "classify":  # class decisions mean nothing for values: evaluate gives MSE/R2, C is checked
        rec.update({"accuracy": None, "agreement": None, "task": model.task})  # bit-exact against its emulation
        if "reference_accuracy" in rec:
            rec["reference_accuracy"] = None
    if out is not None:
        write_text(out, json.dumps(rec, indent=1) + "\n")
    return rec


def simulation_text(r: dict[str, Any]) -> str:
    """The table `ternkit simulate` prints for a record, with the lines its backend adds (`Backend.notes`)."""
    head = (f"{r['backend']}{' ' + r['neuron'] if r['neuron'] else ''}"
            f"{' (' + r['numerics'] + ')' if 'numerics' in r else ''} on {r['dataset']}: {r['samples']} samples, "
            + (f"accuracy {100 * r['accuracy']:.2f} %, agreement with the reference {100 * r['agreement']:.2f} %, "
               if r["accuracy"] is not None and r["agreement"] is not None else f"{r.get('task', 'no')} task, ") +
            f"{r['samples_per_second']:.1f} samples/s, {r['timesteps']} timesteps per inference")
    rows = ["layer  kind     neurons  fan-out  messages/inf  synops/inf  updates/inf  input sparsity"]
    for e in r["layers"]:
        rows.append(f"{e['index']:>5}  {e['kind']:<7} {e['neurons']:>8} {e['fan_out']:>8.1f} "
                    f"{e['messages_per_inference']:>13.1f} {e['synaptic_ops_per_inference']:>11.0f} "
                    f"{e['neuron_updates_per_inference']:>12.0f} {100 * e['input_activation_sparsity']:>13.1f} %")
    ratio = r["synaptic_ops_per_inference"] / max(r["dense_macs_per_inference"], 1)
    rows.append(f"total synaptic ops/inference {r['synaptic_ops_per_inference']:.0f} vs dense MACs "
                f"{r['dense_macs_per_inference']} ({100 * ratio:.1f} %)")
    notes = get(r["backend"]).notes
    return "\n".join([head, *rows, *([notes(r)] if notes is not None else [])])
