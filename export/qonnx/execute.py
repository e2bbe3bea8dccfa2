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


BATCH = 256  # samples per executor call: the graph is re-batched (qonnx's executor checks the declared shapes)


def _batched(w: Any, n: int) -> Any:
    """A copy of the wrapped graph whose input and output declare batch `n` (shapes inferred again)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    m = onnx.ModelProto()
    m.CopyFrom(w.model)
    acts = {m.graph.input[0].name}  # tensors that carry samples (weights and their Quants do not)
    for node in m.graph.node:  # topological order
        if any(i in acts for i in node.input):
            acts.update(node.output)
    for v in (*m.graph.input, *m.graph.output, *m.graph.value_info):
        if v.name in acts:
            v.type.tensor_type.shape.dim[0].dim_value = n
    return ModelWrapper(m).transform(InferShapes())


def _contexts(w: Any, x: np.ndarray, full: bool):
    """qonnx's executor over `x` in batches of up to BATCH samples: each batch's context (or output)."""
    from qonnx.core.onnx_exec import execute_onnx

    inp = w.graph.input[0].name
    shape = tuple(w.get_tensor_shape(inp))[1:]
    graphs: dict[int, Any] = {}
    for i in range(0, len(x), BATCH):
        chunk = np.ascontiguousarray(x[i:i + BATCH].reshape(-1, *shape), dtype=np.float32)
        g = graphs.get(len(chunk)) or graphs.setdefault(len(chunk), _batched(w, len(chunk)))
        yield execute_onnx(g, {inp: chunk}, return_full_exec_context=full)


def run_qonnx(w: Any, x: np.ndarray) -> np.ndarray:
    """Logits of `x` (a batch in the graph input's layout) through the wrapped graph."""
    out = w.graph.output[0].name
    return np.concatenate([np.asarray(ctx[out]).reshape(-1, np.asarray(ctx[out]).shape[-1]) if np.asarray(
        ctx[out]).ndim > 1 else np.asarray(ctx[out]) for ctx in _contexts(w, x, False)])


def tensor_ranges(w: Any, x: np.ndarray) -> dict[str, float]:
    """Largest |value| of every tensor of the graph over the samples `x` (the executor's full context)."""
    top: dict[str, float] = {}
    for ctx in _contexts(w, x, True):
        for name, v in ctx.items():
            a = np.asarray(v)
            if a.dtype.kind == "f" and a.size:
                top[name] = max(top.get(name, 0.0), float(np.abs(a).max()))
    return top
