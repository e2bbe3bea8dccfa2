"""What the QONNX export refuses, each with what to do instead: a light module, read when the backend registry
is built (the graph builder imports onnx)."""

from __future__ import annotations

__all__ = ["HINTS"]

_ACTIVATION = ("the QONNX export takes ReLU only, the activation hls4ml and FINN keep in integer logic; train "
               "with ReLU, or export ONNX")
_LAYOUT = "the QONNX export takes flatten only among reshapes (FINN and hls4ml stream channels-last); export ONNX"
HINTS = {
    "affine": "fold the BatchNorm into the preceding conv or dense layer (the tracer does when it directly "
              "follows one), or export ONNX",
    "concat": "hls4ml reads concatenation only up to rank 3 and FINN not in this form; use a residual add, or "
              "export ONNX",
    "avgpool2d_exclude_pad": "average pooling that leaves padding out of the divisor has no fixed window sum; "
                             "pool without padding (or with count_include_pad), or export ONNX",
    "mul": "an elementwise product of two activations (squeeze-excitation) is a multiplier per element, not the "
           "adders of ternary weights; drop the gate, or export ONNX",
    "scale_shift": _ACTIVATION, "clip": _ACTIVATION, "hardswish": _ACTIVATION, "hardsigmoid": _ACTIVATION,
    "sigmoid": _ACTIVATION, "silu": _ACTIVATION, "tanh": _ACTIVATION, "gelu": _ACTIVATION,
    "reshape": _LAYOUT, "transpose": _LAYOUT, "slice": _LAYOUT,
}
