"""The ONNX backend as a unit (`ternkit.export.backend`): export to an .onnx file and/or an edge bundle, and
simulate in onnxruntime. The graph builder, formats and runtime check stay in graph.py / export.py."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import Dataset, OptionError, TernaryModel
from ternkit.core.activity_schema import record

from ..backend import Backend, Option, Written, register

__all__ = ["BACKEND"]


def _handlers() -> dict[str, Any]:
    from .graph import HANDLERS

    return HANDLERS


def _export(model: TernaryModel, out: str | None, *, where: str = "the model", fmt: str = "int2",
            bundle: str | None = None, check: bool = True) -> Written:
    """`out` (an .onnx file), `bundle` (DIR/model.onnx, labels.json, predict.py), or both."""
    from ternkit.core.atomic import check_writable

    from .bundle import write_bundle
    from .export import export_onnx

    if not out and not bundle:
        raise OptionError("give -o OUT.onnx, --bundle DIR, or both")
    if out and not str(out).endswith(".onnx"):
        raise OptionError(f"-o {out}: the output file name must end in .onnx")
    for path in ([out] if out else []) + ([Path(bundle) / "model.onnx"] if bundle else []):
        check_writable(path)
    lines = [f"note: {where} is a float model; exporting float32 weights"] if (
        model.kind == "float" and fmt != "float") else []
    results = []
    if out:
        results.append(export_onnx(model, out, fmt, check=check))
    if bundle:
        results.append(write_bundle(model, bundle, fmt, check=check))
    for r in results:
        checked = (f"checked with onnxruntime {r.runtime}, max |logit diff| {r.max_abs_diff:.2g}"
                   if r.runtime else "not checked with onnxruntime")
        lines.append(f"wrote {r.path} ({r.format} weights, {r.size:,} bytes; {checked})")
    return Written(tuple(Path(r.path) for r in results), "\n".join(lines), results[0] if len(results) == 1
                   else tuple(results))


def _simulate(model: TernaryModel, data: Dataset, *, where: str = "the model", nbits: bool = False
              ) -> dict[str, Any]:
    """onnxruntime at batch 1 (and batched); activity counted from the reference activations. `nbits`: the
    MatMulNBits export (2-bit weights in RAM) instead of INT2."""
    from ternkit.core.metrics import operation_totals

    from ..activity import activations_activity
    from .export import export_onnx
    from .infer import OnnxModel

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
    pred = logits.argmax(1)
    return record(
        backend="onnx", neuron=None, timesteps=1, samples=len(data), accuracy=float((pred == data.y).mean()),
        agreement=float((pred == model.predict(data.x)).mean()),
        samples_per_second=len(data) / max(t1 - t0, 1e-9), layers=layers,
        dense_macs=operation_totals(model)["connections"],
        batched_samples_per_second=len(data) / max(t2 - t1, 1e-9), weights=written)


_FORMAT = "onnx weight format"
BACKEND = register(Backend(
    name="onnx", title="ONNX", summary="export to ONNX (2-bit INT2 weights by default)",
    description="Export a .tern model to ONNX for onnxruntime. Default: INT2 weights (2 bits each, IR 11 / opset "
    "25) dequantised in the graph; the installed onnxruntime must run the file and agree with the reference before "
    "it is written. Which to pick: the default for any ONNX runtime (exact logits; float speed and float RAM once "
    "loaded in onnxruntime); --nbits for onnxruntime on CPU (faster than float, weights stay 2-bit in RAM, needs "
    "its contrib operators); --int8 for runtimes without INT2.",
    handlers=_handlers, export=_export, simulate=_simulate,
    out_help="the .onnx file to write", out_required=False, out_name="model.onnx",
    export_options=(
        Option("--bundle", "write an edge bundle: DIR/model.onnx, labels.json, predict.py", metavar="DIR"),
        Option("--cast", "INT2 weights dequantised by Cast*scale instead of DequantizeLinear: as fast as float "
               "even with onnxruntime's default session options", dest="fmt", switch=True, const="int2-cast",
               group=_FORMAT),
        Option("--int8", "int8 weights, opset 13 QDQ (runs on older onnxruntime versions)", dest="fmt",
               switch=True, const="int8", group=_FORMAT),
        Option("--float", "plain float32 weights (the size/speed baseline)", dest="fmt", switch=True,
               const="float", group=_FORMAT),
        Option("--nbits", "dense layers as onnxruntime's contrib MatMulNBits (bits=2): faster than float and "
               "2-bit in RAM, logits within ~1e-2 (int8 activations); onnxruntime only. Pick it for onnxruntime "
               "on CPU; keep the default INT2 for any other ONNX runtime or bit-exact logits", dest="fmt",
               switch=True, const="nbits", group=_FORMAT),
        Option("--no-check", "skip the onnxruntime load-and-compare check (onnx.checker still runs)",
               dest="check", switch=True, const=False, default=True),
    ),
    simulate_options=(
        Option("--nbits", "--backend onnx: run the --nbits export (MatMulNBits, 2-bit weights in RAM) instead "
               "of INT2", switch=True, default=False),
    ),
))
