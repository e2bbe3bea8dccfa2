"""ternkit.export: deploy a model artifact -- ONNX (onnxruntime), C for microcontrollers, Lava (Loihi 2), NIR
(spiking simulators and chips), QONNX (hls4ml, FINN) -- and measure it there (`simulate`).

Each backend is one package behind one protocol (`ternkit.export.backend`). Registration is the one line per
backend below (third parties use the `ternkit.backends` entry point group instead). The units import their heavy
parts (onnx, lava, compilers) on first use, so reading the registry -- the CLI builds its parser from it -- costs
little; the public names load on first access too.
"""

from __future__ import annotations

import importlib
from typing import Any

from .backend import Backend, Option, Written, backends, get, register, unregister
from .c import backend as _c  # noqa: F401  -- registers c and cortex-m4
from .deploy import export_model
from .evaluate import evaluate  # a function named like its module: bound here, so the module never shadows it
from .lava import backend as _lava  # noqa: F401  -- registers lava
from .nir import backend as _nir  # noqa: F401  -- registers nir
from .onnx import backend as _onnx  # noqa: F401  -- registers onnx
from .qonnx import backend as _qonnx  # noqa: F401  -- registers qonnx and hls4ml
from .simulate import simulate, simulation_data, simulation_text

__all__ = ["Backend", "Option", "Written", "backends", "get", "register", "unregister", "export_model",
           "export_onnx", "export_c", "export_lava", "export_nir", "export_qonnx", "OnnxExport", "OnnxModel",
           "write_bundle", "save_graph", "load_graph", "simulate_graph", "lava_activity", "LavaRun", "import_lava",
           "LavaUnavailable", "activity_record", "activations_activity", "calibration_data", "lava_graph_for",
           "evaluate", "simulate", "simulation_data", "simulation_text"]

_WHERE = {
    "export_onnx": ".onnx.export", "export_c": ".c.backend", "export_lava": ".lava.backend",
    "export_nir": ".nir.backend", "export_qonnx": ".qonnx.export",
    "OnnxExport": ".onnx.export", "OnnxModel": ".onnx.infer", "write_bundle": ".onnx.bundle",
    "save_graph": ".lava.graph", "load_graph": ".lava.graph", "simulate_graph": ".lava.sim",
    "lava_activity": ".lava.sim", "LavaRun": ".lava.sim", "import_lava": ".lava.compat",
    "LavaUnavailable": ".lava.compat", "lava_graph_for": ".lava.export",
    "activity_record": ".activity", "activations_activity": ".activity", "calibration_data": ".calibration",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module 'ternkit.export' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
