"""ternkit.export: deploy a model artifact (ONNX for onnxruntime; Lava)."""

from .bundle import write_bundle
from .onnx import OnnxExport, export_onnx
from .onnx_infer import OnnxModel

__all__ = ["export_onnx", "OnnxExport", "OnnxModel", "write_bundle"]
