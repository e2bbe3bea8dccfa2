"""The FPGA route as two units (`ternkit.export.backend`): `qonnx` exports the QONNX file that hls4ml and FINN
read; `hls4ml` (simulate only) converts that graph with hls4ml, compiles its C++ emulation with g++, runs it and
reports agreement with the reference and the weight storage hls4ml chose. Both need the `fpga` extra (qonnx,
hls4ml); the graph builder, check, precisions and driver stay in graph.py / export.py / precision.py / hls.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core import Dataset, TernaryModel
from ternkit.core.activity_schema import record
from ternkit.core.errors import OptionError, UnsupportedError

from ..backend import Backend, Option, Written, register
from .hints import HINTS

__all__ = ["QONNX", "HLS4ML", "simulate_hls4ml"]

CALIBRATION = 64


def _handlers() -> dict[str, Any]:
    from .graph import HANDLERS

    return HANDLERS


def _calibration(model: TernaryModel, calibrate: Any, where: str) -> tuple[np.ndarray, str]:
    from ..calibration import calibration_data

    x, _, spec = calibration_data(model, calibrate, n=CALIBRATION, where=where)
    return x, spec


def _export(model: TernaryModel, out: str, *, where: str = "the model", act_bits: int | None = None,
            calibrate: Any = None) -> Written:
    from ternkit.core.atomic import check_writable

    from .export import export_qonnx

    if not str(out).endswith(".onnx"):
        raise OptionError(f"-o {out}: the output file name must end in .onnx (e.g. model.qonnx.onnx)")
    check_writable(out)
    x = source = None
    if act_bits is not None:
        x, source = _calibration(model, calibrate, where)
    r = export_qonnx(model, out, act_bits=act_bits, calibrate=x)
    acts = f"{r.activation_bits}-bit activations calibrated on {source}" if r.activation_bits else "float activations"
    return Written((Path(out),), f"wrote {out} (QONNX: {r.weight_bits}-bit integer weights, {acts}; {r.size:,} "
                   f"bytes; checked with qonnx {r.qonnx_version}'s executor, max |logit diff| {r.max_abs_diff:.2g})",
                   r)


def _check_hls4ml(model: TernaryModel) -> None:
    """What hls4ml 1.3.0 cannot take though QONNX says it, refused before any slow work."""
    for n in model.nodes:
        if n.op.kind == "maxpool2d" and n.op.ceil:
            raise UnsupportedError(f"node {n.name}: hls4ml 1.3.0 pads pooling evenly only, so ceil_mode max pooling "
                                   "(extra padding at the end) does not convert; pad the input so the windows fit, "
                                   "or take the QONNX export to FINN")


def simulate_hls4ml(model: TernaryModel, data: Dataset, *, where: str = "the model", calibrate: Any = None,
                    build: str | os.PathLike | None = None, width: int | None = None,
                    act_bits: int | None = None) -> dict[str, Any]:
    """hls4ml's C++ emulation of `model` on `data`: accuracy, agreement with the reference and max |logit
    difference|, the firmware's weight storage; `build` keeps DIR/hls4ml_config.yml, the prepared graph and the
    HLS project for synthesis."""
    from ternkit.core.atomic import check_output_dir
    from ternkit.core.metrics import operation_totals

    from ..activity import activations_activity
    from .graph import quantised_forward
    from .hls import PROJECT_FILES, hls4ml_model, weight_storage
    from .precision import DEFAULT_WIDTH

    _check_hls4ml(model)
    width = DEFAULT_WIDTH if width is None else width
    if not 6 <= width <= 64:
        raise OptionError(f"--width {width}: choose 6..64 bits")
    if build is not None:
        check_output_dir(build, PROJECT_FILES)
    x_cal, source = _calibration(model, calibrate, where)
    run = hls4ml_model(model, x_cal, width=width, act_bits=act_bits)
    try:
        t0 = time.perf_counter()
        logits = run.predict(data.x)
        seconds = time.perf_counter() - t0
        storage = weight_storage(run)
        written = [str(p) for p in run.write_project(build)] if build is not None else []
    finally:
        run.close()
    ref = model.forward(data.x)
    # max |difference| against what the graph computes: the reference, or its activation-quantised twin
    twin = ref if run.act is None else quantised_forward(model, data.x, run.act)
    classify = getattr(model, "task", "classify") == "classify"
    pred = logits.argmax(1)
    weights = [p for row in storage if row["class"] in _WEIGHTED for p in row["params"] if p["name"] == "weight"]
    return record(
        backend="hls4ml", neuron=None, timesteps=1, samples=len(data),
        accuracy=float((pred == data.y).mean()) if classify else None,
        agreement=float((pred == ref.argmax(1)).mean()) if classify else None,
        samples_per_second=len(data) / max(seconds, 1e-9),
        layers=activations_activity(model, data.x)[0], dense_macs=operation_totals(model)["connections"],
        max_abs_diff=float(np.abs(logits - twin).max()), max_abs_diff_reference=float(np.abs(logits - ref).max()),
        precision_width=run.width, activation_bits=act_bits, calibration=source,
        compile_seconds=run.compile_seconds, hls_layers=storage,
        weight_types=sorted({p["type"] for p in weights}),
        weight_bits=int(sum(p["total_bits"] for p in weights)),
        parameter_bits=int(sum(p["total_bits"] for row in storage for p in row["params"])),
        versions=run.versions, build=written or None)


_WEIGHTED = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "PointwiseConv2D")


def _notes(rec: dict[str, Any]) -> str:
    lines = [f"hls4ml {rec['versions'].get('hls4ml')} C++ emulation (io_parallel, compiled in "
             f"{rec['compile_seconds']:.1f} s): max |logit difference| {rec['max_abs_diff']:.3g}, precisions "
             f"width {rec['precision_width']}"
             + (f", {rec['activation_bits']}-bit activations" if rec.get("activation_bits") else ""),
             f"weights: {', '.join(rec['weight_types'])}, {rec['weight_bits']:,} bits; all parameters "
             f"{rec['parameter_bits']:,} bits ({rec['parameter_bits'] / 8192:.1f} KiB)",
             "layer                      class                result / accumulator types; parameters"]
    for row in rec["hls_layers"]:
        params = "; ".join(f"{p['name']} {p['type']} x{p['count']}" for p in row["params"])
        types = row["result"] + (f" / {row['accum']}" if row.get("accum") else "")
        lines.append(f"{row['layer'][:26]:<26} {row['class'][:20]:<20} {types}{'; ' + params if params else ''}")
    if rec.get("build"):
        lines.append(f"wrote {', '.join(rec['build'])} (hls4ml convert -c hls4ml_config.yml; hls4ml build -p project)")
    return "\n".join(lines)


def _require(stage: str) -> None:
    if stage == "export":
        from .execute import require_qonnx

        require_qonnx()
    else:
        from .hls import require_hls4ml

        require_hls4ml()


_ACT_BITS = Option("--act-bits", "an unsigned Quant of this width after every ReLU, scaled on calibration data "
                   "(default: float activations)", type=int, choices=(4, 8), metavar="BITS")
_CALIBRATE = Option("--calibrate", "data that sets activation scales and hls4ml precisions (default: the training "
                    "part of the model's dataset, if it is a bundled one: iris, digits, mnist-sample)",
                    metavar="DATASET")
_BUILD = Option("--build", "--backend c|cortex-m4|hls4ml: keep the build here (hls4ml: hls4ml_config.yml, "
                "model.hls4ml.onnx and the HLS project, for Vivado/Vitis HLS)", metavar="DIR")

QONNX = register(Backend(
    name="qonnx", title="QONNX", summary="export QONNX (Quant on 2-bit integer weights) for hls4ml and FINN (FPGA)",
    description="Write the ternary graph as QONNX: integer weights behind Quant nodes (2 bits, signed, narrow), the "
    "per-channel scale as a Mul and the bias as an Add after each MatMul/Conv, input normalisation as a "
    "BatchNormalization. qonnx's own executor must agree with the reference before the file is written. Needs "
    "the fpga extra (pip install 'ternkit[fpga]').",
    handlers=_handlers, refusals=HINTS, export=_export, require=_require,
    out_help="the .qonnx.onnx file to write", out_name="model.qonnx.onnx",
    export_options=(_ACT_BITS, _CALIBRATE),
))
HLS4ML = register(Backend(
    name="hls4ml", title="hls4ml", summary="the QONNX export converted by hls4ml and run in its C++ emulation "
    "(simulate only)",
    handlers=_handlers, refusals=HINTS, simulate=simulate_hls4ml, require=_require, notes=_notes,
    limits={"maxpool2d": "ceil_mode max pooling"},
    simulate_options=(_CALIBRATE, _BUILD, Option("--width", "fixed-point width of activations "
                                                 "and parameters (default 18)", type=int, metavar="BITS"),
                      _ACT_BITS),
))
