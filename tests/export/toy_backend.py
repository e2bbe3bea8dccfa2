"""A toy backend that lives outside ternkit's source: importing this module registers it, and nothing in
ternkit names it. It runs each node through its own handler (the numpy reference of the operation, optionally
in float16), refuses max pooling with a hint, exports the node list as JSON and simulates with an activity
record. The same module is also a Python entry point target (group `ternkit.backends`) in
test_toy_backend.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import INPUT, Dataset, OptionError, TernaryModel
from ternkit.core.activity_schema import record
from ternkit.core.atomic import write_text
from ternkit.core.ops import OPS
from ternkit.export.activity import activations_activity
from ternkit.export.backend import Backend, Option, Written, register

REFUSALS = {"maxpool2d": "the toy backend keeps no maxima; use avgpool2d or a strided conv2d"}


def _run(op: Any, xs: list[np.ndarray], dtype: type) -> np.ndarray:
    return op.forward(*[x.astype(dtype) for x in xs]).astype(np.float32)


def handlers() -> dict[str, Any]:
    """Every registered operation (read when asked, so an operation registered later is handled too)."""
    return {kind: _run for kind in OPS if kind not in REFUSALS}


_DTYPES = {"float32": np.float32, "float16": np.float16}


def logits(model: TernaryModel, x: np.ndarray, precision: str = "float32") -> np.ndarray:
    values = {INPUT: model.input.normalise(np.asarray(x, np.float32))}
    for node in model.nodes:
        fn = BACKEND.handler(node.op, where=f"node {node.name}")
        values[node.name] = fn(node.op, [values[i] for i in node.inputs], _DTYPES[precision])
    return values[model.nodes[-1].name]


def _export(model: TernaryModel, out: str, *, where: str, precision: str = "float32") -> Written:
    if not out.endswith(".json"):
        raise OptionError(f"-o {out}: the toy export is a .json file")
    kinds = [BACKEND.handler(n.op, where=f"node {n.name}") and n.op.kind for n in model.nodes]  # refuse first
    write_text(out, json.dumps({"format": "toy", "precision": precision, "nodes": kinds,
                                "fingerprint": model.fingerprint()}) + "\n")
    return Written((Path(out),), f"wrote {out} ({len(kinds)} toy nodes, {precision})", kinds)


def _simulate(model: TernaryModel, data: Dataset, *, where: str, precision: str = "float32") -> dict[str, Any]:
    t0 = time.perf_counter()
    pred = logits(model, data.x, precision).argmax(1)
    seconds = time.perf_counter() - t0
    layers, macs = activations_activity(model, data.x)
    return record(backend="toy", neuron=None, timesteps=1, samples=len(data),
                  accuracy=float((pred == data.y).mean()), agreement=float((pred == model.predict(data.x)).mean()),
                  samples_per_second=len(data) / max(seconds, 1e-9), layers=layers, dense_macs=macs,
                  precision=precision)


_PRECISION = Option("--precision", "toy arithmetic", choices=tuple(_DTYPES), default="float32")
BACKEND = register(Backend(
    name="toy", summary="a toy backend registered from tests/", handlers=handlers, refusals=REFUSALS,
    export=_export, simulate=_simulate, out_help="the .json file to write", out_name="model.toy.json",
    export_options=(_PRECISION,), simulate_options=(_PRECISION,),
))
