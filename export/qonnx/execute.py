"""Run a QONNX graph with qonnx's own executor (`qonnx.core.onnx_exec.execute_onnx`), the reference
implementation of the `Quant` node that hls4ml and FINN follow. The graphs have batch 1 (what hls4ml and FINN
want), so samples run one at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ternkit.core.errors import TernkitError

__all__ = ["require_qonnx", "qonnx_version", "wrap", "run_qonnx", "tensor_ranges"]

INSTALL = "pip install 'ternkit[fpga]' (qonnx 1.0.0, hls4ml 1.3.0)"


def require_qonnx() -> None:
    """One line saying how to install qonnx when it is missing (it is an optional extra)."""
    try:
        import qonnx  # noqa: F401
    except ImportError:
        raise TernkitError(f"the QONNX export needs qonnx: {INSTALL}") from None


def qonnx_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qonnx")
    except PackageNotFoundError:
        return "?"


def wrap(model: onnx.ModelProto) -> Any:
    """A qonnx ModelWrapper with every tensor shape inferred (the executor needs them)."""
    import onnxruntime

    # qonnx runs each node in its own onnxruntime session, and onnxruntime warns for every one of them that its
    # transpose optimizer does not know the qonnx domain's opset: noise on the user's terminal, not a fault
    onnxruntime.set_default_logger_severity(3)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(model).transform(InferShapes())


def _feed(w: Any, x: np.ndarray) -> tuple[str, str, tuple[int, ...]]:
    inp, out = w.graph.input[0].name, w.graph.output[0].name
    return inp, out, tuple(w.get_tensor_shape(inp))


def run_qonnx(w: Any, x: np.ndarray) -> np.ndarray:
    """Logits of `x` (a batch in the graph input's layout) through the wrapped graph, one sample at a time."""
    from qonnx.core.onnx_exec import execute_onnx

    inp, out, shape = _feed(w, x)
    return np.concatenate([np.asarray(execute_onnx(w, {inp: x[i:i + 1].reshape(shape).astype(np.float32)})[out])
                           .reshape(1, -1) for i in range(len(x))])


def tensor_ranges(w: Any, x: np.ndarray) -> dict[str, float]:
    """Largest |value| of every tensor of the graph over the samples `x` (the executor's full context)."""
    from qonnx.core.onnx_exec import execute_onnx

    inp, _, shape = _feed(w, x)
    top: dict[str, float] = {}
    for i in range(len(x)):
        ctx = execute_onnx(w, {inp: x[i:i + 1].reshape(shape).astype(np.float32)}, return_full_exec_context=True)
        for name, v in ctx.items():
            a = np.asarray(v)
            if a.dtype.kind == "f" and a.size:
                top[name] = max(top.get(name, 0.0), float(np.abs(a).max()))
    return top
