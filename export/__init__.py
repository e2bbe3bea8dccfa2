"""ternkit.export: deploy a model artifact (ONNX for onnxruntime; Lava)."""

from .activity import activations_activity, activity_record
from .bundle import write_bundle
from .calibration import calibration_data
from .evaluate import evaluate
from .lava_compat import LavaUnavailable, import_lava
from .lava_export import lava_graph_for
from .lava_graph import build_graph, emulate, load_graph, save_graph
from .lava_sim import LavaRun, lava_activity, simulate_graph
from .onnx import OnnxExport, export_onnx
from .onnx_infer import OnnxModel
from .simulate import BACKENDS, Backend, register_backend, simulate, simulation_data

__all__ = ["export_onnx", "OnnxExport", "OnnxModel", "write_bundle",
           "build_graph", "save_graph", "load_graph", "emulate", "simulate_graph", "lava_activity", "LavaRun",
           "import_lava", "LavaUnavailable", "activity_record", "activations_activity",
           "calibration_data", "lava_graph_for", "evaluate", "simulate", "simulation_data", "BACKENDS", "Backend",
           "register_backend"]
