"""The C backends as units (`ternkit.export.backend`): `c` exports dependency-free integer C99 and simulates it
built with the host compiler; `cortex-m4` (simulate only) cross-builds the same C and runs it in qemu. Both
share the C handlers; the program builder, kernels and build steps stay in program.py / ops.py / build.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ternkit.core import Dataset, TernaryModel

from ..backend import Backend, Option, Written, register
from .handlers import REFUSALS

__all__ = ["BACKEND", "CORTEX_M4", "export_c"]


def _handlers() -> dict[str, Any]:
    from .handlers import HANDLERS

    return HANDLERS


def export_c(model: TernaryModel, out: str | os.PathLike, *, calibrate: Any = None, where: str = "the model",
             target: str = "generic", packing: str = "2bit"):
    """DIR/model.h + DIR/model.c for `model`, requantisation calibrated on `calibrate`: a dataset spec, an array
    of raw samples or a Dataset (default: the training part of the model's own bundled dataset, as
    `ternkit export c` uses). Returns the integer program (`CProgram`). What the C cannot express is refused
    before calibration."""
    from ..calibration import calibration_data
    from .emit import check_out_dir
    from .emit import export_c as emit_c
    from .program import check_supported, check_target

    check_target(target, packing)
    check_supported(model)  # an unsupported operation is refused before calibration
    check_out_dir(out)
    x, _, spec = calibration_data(model, calibrate, where=where)  # what export lava uses
    return emit_c(model, out, x, source=spec, target=target, packing=packing)


def _export(model: TernaryModel, out: str, *, where: str = "the model", calibrate: Any = None,
            target: str = "generic", packing: str = "2bit") -> Written:
    prog = export_c(model, out, calibrate=calibrate, where=where, target=target, packing=packing)
    return Written((Path(out) / "model.h", Path(out) / "model.c"), f"wrote {out}/model.h and model.c "
                   f"({len(prog.steps)} kernel calls, activation arena {prog.arena_bytes} bytes, TK_INPUTS "
                   f"{prog.inputs}, TK_CLASSES {prog.classes}; calibrated on {prog.calibration_samples} samples of "
                   f"{prog.source})", prog)


def _simulator(name: str):
    def simulate(model: TernaryModel, data: Dataset, *, where: str = "the model", calibrate: Any = None,
                 build: str | os.PathLike | None = None, packing: str = "2bit") -> dict[str, Any]:
        from .sim import run_backend

        return run_backend(name, model, data, calibrate=calibrate, build=build, where=where, packing=packing)

    return simulate


def _require(name: str):
    def require(stage: str) -> None:
        if stage == "simulate":  # the export is text; building and running it needs the compilers
            from .build import require_tools

            require_tools(name)

    return require


def _notes(record: dict[str, Any]) -> str:
    from .sim import c_summary

    return c_summary(record)


_CALIBRATE = Option("--calibrate", "data that sets the fixed-point scales (default: the training part of the "
                    "model's dataset, if it is a bundled one: iris, digits, mnist-sample)", metavar="DATASET")
_BUILD = Option("--build", "--backend c|cortex-m4: keep the build here (model.c, model.o, firmware.elf, mcu.json "
                "with the measured figures; `ternkit report --build DIR` reads it)", metavar="DIR")

_TARGET = Option("--target", "kernels: portable C99, or Cortex-M4 DSP (SMLAD dot products; plain-C fallbacks "
                 "elsewhere)", choices=("generic", "cortex-m4"), default="generic")
_PACKING = Option("--packing", "weight storage: 2 bits per weight, or base-3 (5 trits per byte, 1.6 bits)",
                  choices=("2bit", "base3"), default="2bit")

BACKEND = register(Backend(
    name="c", title="C", summary="export dependency-free C99 (int8 activations, add/subtract kernels) for a "
    "microcontroller",
    description="Write DIR/model.h and DIR/model.c: integer-only inference with 2-bit packed const weights and one "
    "static activation arena; requantisation is calibrated on data. API: tk_quantize(raw, q), tk_predict(q, "
    "scores).",
    handlers=_handlers, refusals=REFUSALS, export=_export, simulate=_simulator("c"), require=_require("c"),
    notes=_notes,
    out_help="directory to write (new, empty, or holding an earlier model.h/model.c)", out_name="c",
    export_options=(_CALIBRATE, _TARGET, _PACKING), simulate_options=(_CALIBRATE, _BUILD, _PACKING),
))
CORTEX_M4 = register(Backend(
    name="cortex-m4", title="C", summary="the C export cross-built for a Cortex-M4 and run in qemu (simulate only)",
    handlers=_handlers, refusals=REFUSALS, simulate=_simulator("cortex-m4"), require=_require("cortex-m4"),
    notes=_notes,
    simulate_options=(_CALIBRATE, _BUILD, _PACKING),
))
