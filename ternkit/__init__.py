"""ternkit: train ternary neural networks (CoNNTrA) and deploy them (ONNX, C for microcontrollers, Lava, and
any registered backend), with memory and energy reports.

The public API, one import away; heavy parts (torch, onnx, lava) load on first use:

    import ternkit
    result = ternkit.train(ternkit.TrainConfig(dataset="digits", model="mlp:64", epochs=10), out="m.tern")
    model = ternkit.load_model("m.tern")            # TernaryModel; model.forward(x) is the reference inference
    ternkit.export_onnx(model, "m.onnx")            # 2-bit weights, runs in onnxruntime
    ternkit.export_c(model, "mcu/", calibrate="digits")   # C99; calibration data: a spec, an array or a Dataset
    ternkit.export_model("lava", model, "m.lava.json")    # any registered backend by name (ternkit.backends())
    ternkit.simulate(model, "digits", "onnx", limit=100)  # an activity record
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    # the artifact and data (ternkit.core)
    "TernaryModel", "load_model", "save_model", "load_dataset", "load_split", "TernkitError",
    # training (ternkit.trainer), and your own models: ternkit.nn, ternkit.optim
    "train", "train_methods", "TrainConfig", "ternarize", "to_artifact", "recalibrate_batchnorm", "nn", "optim",
    # deployment (ternkit.export)
    "export_onnx", "export_c", "export_lava", "export_nir", "export_qonnx", "export_model", "backends",
    "OnnxModel", "write_bundle",
    "calibration_data", "lava_graph_for", "simulate", "simulation_data", "evaluate",
    # memory and energy reports (ternkit.targets)
    "report_model", "write_report",
]

_WHERE = {
    "TernaryModel": "ternkit.core", "load_model": "ternkit.core", "save_model": "ternkit.core",
    "load_dataset": "ternkit.core", "load_split": "ternkit.core", "TernkitError": "ternkit.core",
    "train": "ternkit.trainer", "train_methods": "ternkit.trainer", "TrainConfig": "ternkit.trainer",
    "ternarize": "ternkit.trainer.modules", "to_artifact": "ternkit.trainer.trace",
    "recalibrate_batchnorm": "ternkit.trainer.batchnorm",
    "export_onnx": "ternkit.export", "export_c": "ternkit.export", "export_lava": "ternkit.export",
    "export_nir": "ternkit.export", "export_qonnx": "ternkit.export",
    "export_model": "ternkit.export", "backends": "ternkit.export",
    "OnnxModel": "ternkit.export", "write_bundle": "ternkit.export",
    "calibration_data": "ternkit.export", "lava_graph_for": "ternkit.export", "simulate": "ternkit.export",
    "simulation_data": "ternkit.export", "evaluate": "ternkit.export",
    "report_model": "ternkit.targets", "write_report": "ternkit.targets",
}


def __getattr__(name: str) -> Any:
    if name in ("nn", "optim"):
        return importlib.import_module(f"ternkit.{name}")
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ternkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
