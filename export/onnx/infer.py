"""Run an exported `.onnx` file with onnxruntime: the session options we stand behind, and `OnnxModel`.

Session options (measured with onnxruntime 1.32, see docs/onnx.md):
- `exact` (our default): all graph optimisations, but onnxruntime's QDQ fusions switched off
  (`session.disable_quant_qdq`). Constant folding then dequantises the 2-bit initializers once, at load,
  into float weights, so inference is as fast as the float32 export and matches the numpy reference to
  float rounding (~1e-6). The file on disk stays 2-bit.
- `stock`: onnxruntime's defaults. `DequantizeLinear` on a weight is kept (to be fused) and runs on every
  call: ~10x slower at batch 1; some fusions (`DequantizeLinear -> MatMul` -> `MatMulNBits`, int8 QDQ ->
  dynamically quantised matmul) change results, which is why the exporter never emits `DQ -> MatMul`.
- `none`: no graph optimisation at all; the literal graph, for debugging.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ternkit.core.errors import ArtifactError, OptionError

__all__ = ["OnnxModel", "SESSION_MODES", "session_options", "make_session"]

SESSION_MODES = ("exact", "stock", "none")


def session_options(mode: str = "exact", threads: int | None = None):
    """`onnxruntime.SessionOptions` for one of `SESSION_MODES` (the module docstring says why each exists)."""
    import onnxruntime as ort

    if mode not in SESSION_MODES:
        raise OptionError(f"unknown session mode {mode!r}; use one of {', '.join(SESSION_MODES)}")
    so = ort.SessionOptions()
    so.log_severity_level = 3  # warnings about serialising optimised graphs etc. are not the user's concern
    if mode == "exact":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    elif mode == "none":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        so.intra_op_num_threads = threads
    return so


def make_session(model: bytes | str | os.PathLike, mode: str = "exact", threads: int | None = None):
    """An onnxruntime CPU session; `model` is a path or the serialised bytes."""
    import onnxruntime as ort

    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, session_options(mode, threads), providers=["CPUExecutionProvider"])


class OnnxModel:
    """An exported model run by onnxruntime, with the same surface eval needs from a `.tern`:
    `labels`, `input_shape` (one sample) and `forward(raw batch) -> logits`."""

    def __init__(self, path: str | os.PathLike, mode: str = "exact", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: no such file")
        try:
            self.session = make_session(self.path, mode, threads)
        except OptionError:
            raise
        except Exception as e:  # onnxruntime raises its own types for unreadable/invalid models
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ArtifactError(f"{self.path}: onnxruntime cannot load this model ({first})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ArtifactError(f"{self.path}: expected one input and a logits output, found "
                                f"{len(inputs)} inputs and {len(outputs)} outputs")
        self.input_name = meta.get("ternkit.input_name", inputs[0].name)
        self.output_name = meta.get("ternkit.output_name", outputs[0].name)
        self.weights = meta.get("ternkit.weights", "unknown")
        try:
            shape = json.loads(meta["ternkit.input_shape"]) if "ternkit.input_shape" in meta else inputs[0].shape[1:]
            self.input_shape: tuple[int, ...] = tuple(int(d) for d in shape)
            n_out = outputs[0].shape[-1] if outputs[0].shape else None
            labels = json.loads(meta["ternkit.labels"]) if "ternkit.labels" in meta else list(range(int(n_out)))
            self.labels: list[str] = [str(x) for x in labels]
        except (ValueError, TypeError, KeyError) as e:
            raise ArtifactError(f"{self.path}: unreadable ternkit metadata in the ONNX file ({e})") from None
        self.metadata = dict(meta)

    def forward(self, x_raw: np.ndarray) -> np.ndarray:
        """Logits for a batch of raw (un-normalised) samples; the graph normalises."""
        x = np.ascontiguousarray(x_raw, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ArtifactError(f"input has shape {x.shape[1:]}, the model expects {self.input_shape}")
        try:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ArtifactError(f"{self.path}: onnxruntime failed to run the model ({first})") from None

    def predict(self, x_raw: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        if not len(x_raw):
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.forward(x_raw[i:i + batch_size]).argmax(1)
                               for i in range(0, len(x_raw), batch_size)])
