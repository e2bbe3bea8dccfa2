"""ternkit.export: deploy a model artifact (ONNX for onnxruntime; Lava)."""

from .activity import activations_activity, activity_record
from .calibration import calibration_data
from .evaluate import evaluate
from .lava.compat import LavaUnavailable, import_lava
from .lava.export import lava_graph_for
from .lava.graph import build_graph, emulate, load_graph, save_graph
from .lava.sim import LavaRun, lava_activity, simulate_graph
from .onnx.bundle import write_bundle
from .onnx.export import OnnxExport, export_onnx
from .onnx.infer import OnnxModel
from .simulate import BACKENDS, Backend, register_backend, simulate, simulation_data

__all__ = ["export_onnx", "OnnxExport", "OnnxModel", "write_bundle",
           "build_graph", "save_graph", "load_graph", "emulate", "simulate_graph", "lava_activity", "LavaRun",
           "import_lava", "LavaUnavailable", "activity_record", "activations_activity",
           "calibration_data", "lava_graph_for", "evaluate", "simulate", "simulation_data", "BACKENDS", "Backend",
           "register_backend"]
