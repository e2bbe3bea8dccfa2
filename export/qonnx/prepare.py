"""Turn a ternkit QONNX graph into the form hls4ml 1.3.0 reads: qonnx's cleanup (shapes, constant folding --
the weight `Quant`s survive it), channels-last layout (hls4ml's convolution and pooling kernels are NHWC; the
graph keeps an NCHW input and transposes it inside), `Gemm` -> `MatMul`, cleanup again. Then one fix of our
own: the per-channel `Mul`/`Add` constants that channels-last reshaped to (1, 1, 1, C) become (C,), since
hls4ml broadcasts a constant of at most the tensor's rank (a rank-4 one raises in its MergeToApplyAlpha).
The result is also what `ternkit simulate --backend hls4ml --build DIR` writes for the user's own hls4ml run."""

from __future__ import annotations

from typing import Any

import onnx

__all__ = ["prepare_for_hls4ml"]


def prepare_for_hls4ml(model: onnx.ModelProto) -> Any:
    """The hls4ml-ready qonnx ModelWrapper of a QONNX graph built by `build_qonnx`."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    w = cleanup_model(ModelWrapper(model))
    w = w.transform(ConvertToChannelsLastAndClean())
    w = w.transform(GemmToMatMul())
    w = cleanup_model(w)
    for node in w.graph.node:
        if node.op_type in ("Mul", "Add"):
            for name in node.input:
                v = w.get_initializer(name)
                if v is not None and v.ndim > 1:
                    w.set_initializer(name, v.reshape(-1) if v.size > 1 else v.reshape(()))
    return w.transform(InferShapes())
