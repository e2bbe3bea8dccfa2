"""The ONNX backend: INT2/int8/float/MatMulNBits graphs for onnxruntime, the runtime check, the bundle."""
