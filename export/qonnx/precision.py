"""Choose hls4ml's fixed-point types from the model instead of one default for everything.

hls4ml's default `fixed<16,6>` for every tensor gives each value 10 fractional bits whatever its size: a
per-channel scale of 0.004 keeps 2 significant bits, and the logits drift (a probe: 99.4 % argmax agreement on
digits; `fixed<32,12>` everywhere reached 100 % at the price of 32-bit datapaths). Here every tensor gets the
integer bits its range needs and the rest of a fixed width as fraction, so every value keeps about `width - 2`
significant bits:

- activations, the normalised input and pooling/add outputs: `fixed<W, I>`, I = the bits (sign included) that
  hold twice the largest |value| seen on the calibration samples (a margin for unseen data); W = `width`
  (default 18: the multiplier port of Xilinx DSP48 slices, where the per-channel scale is applied);
- weights: the `Quant` node fixes them (ternary: `ap_fixed<2,2,RND_CONV,SAT_SYM>`), untouched;
- dense/conv accumulators and outputs: exact. The weights are integers, so the sum of inputs of F fractional
  bits has F fractional bits too; its integer bits come from the range. With AP_WRAP overflow, partial sums
  that wrap come back, so the final sum is exact whenever it fits. After an activation `Quant` hls4ml feeds the
  integer codes and moves the scale below the layer, so the graph's ranges do not apply: the worst case
  (code bits + log2(fan-in) + sign) does;
- the scale and bias parameters of ApplyAlpha / BatchNormalization: the integer bits of their largest value
  and enough fraction that the smallest non-zero one still keeps `W - 2` significant bits (scales of 0.004..0.3
  at W = 18: `fixed<25,1>`, inside the 27-bit port of a DSP48), rounded to nearest (RND) when hls4ml
  quantises them. All-zero arrays (the Dense/Conv bias, which the ApplyAlpha after it absorbs) are 2 bits.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DEFAULT_WIDTH", "int_bits", "fixed", "choose_precisions", "MARGIN"]

DEFAULT_WIDTH = 18
MARGIN = 2.0  # headroom over the largest value seen in calibration
_WEIGHTED = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "PointwiseConv2D")
_PARAMS = ("ApplyAlpha", "BatchNormalization")


def int_bits(top: float, margin: float = MARGIN) -> int:
    """Signed integer bits that hold +-(top * margin): at least 1 (the sign)."""
    v = top * margin
    return 1 if v <= 0 else max(1, math.ceil(math.log2(v)) + 1)


def fixed(width: int, integer: int, rounding: str = "") -> str:
    return f"fixed<{width},{integer}{',' + rounding + ',SAT' if rounding else ''}>"


def _frac(precision: Any) -> int:
    return int(precision.width) - int(precision.integer)


def choose_precisions(layers: list[Any], ranges: dict[str, float], width: int = DEFAULT_WIDTH) -> dict[str, dict]:
    """Per hls4ml layer name, its `Precision` config. `layers` are a converted hls4ml model's layers (first
    pass, any precision), `ranges` the largest |value| of each tensor of the prepared graph over the calibration
    samples (the input included)."""
    out: dict[str, dict] = {}
    frac_of: dict[str, int] = {}  # tensor -> fractional bits of its chosen type
    for layer in layers:
        cls = layer.class_name
        name = layer.name
        tensor = layer.outputs[0]
        top = ranges.get(tensor, 0.0)
        prec: dict[str, str] = {}
        if cls in _WEIGHTED:
            if "bias" in layer.weights:
                prec["bias"] = _param(layer.weights["bias"], width)
            codes = _integer_codes(layer)
            if codes is not None:  # an activation Quant feeds integer codes; hls4ml moved its scale below us
                i_out = codes + math.ceil(math.log2(max(2, _fan_in(layer)))) + 1  # worst case: exact, no range
                prec["result"] = prec["accum"] = fixed(i_out, i_out)
                frac_of[tensor] = 0
                out[name] = prec
                continue
            f_in = frac_of.get(layer.inputs[0], width - int_bits(ranges.get(layer.inputs[0], 0.0)))
            i_out = int_bits(top)
            prec["result"] = prec["accum"] = fixed(i_out + f_in, i_out)
            frac_of[tensor] = f_in
        else:
            i_out = int_bits(top)
            prec["result"] = fixed(width, i_out)
            frac_of[tensor] = width - i_out
            if cls in _PARAMS:
                for key in ("scale", "bias"):
                    if key in layer.weights:
                        prec[key] = _param(layer.weights[key], width)
            if "Pooling" in cls:
                f_in = frac_of.get(layer.inputs[0], width - i_out)
                i_acc = int_bits(top * _window(layer))
                prec["accum"] = fixed(i_acc + f_in, i_acc)
        out[name] = prec
    return out


def _integer_codes(layer: Any) -> int | None:
    """Bits of the input when it is an integer type (an activation `Quant`'s codes, as hls4ml feeds them once it
    has moved the quantisation scale below this layer), else None."""
    src = layer.get_input_node()
    p = src.get_output_variable().type.precision if src is not None else None
    if p is None or not hasattr(p, "integer") or int(p.width) != int(p.integer):
        return None
    return int(p.width) + (0 if getattr(p, "signed", True) else 1)  # unsigned codes: one more bit once signed


def _fan_in(layer: Any) -> int:
    w = layer.weights["weight"].data
    n_out = int(layer.get_attr("n_filt", 0) or layer.get_attr("n_out", 0) or w.shape[-1])
    return max(1, int(w.size) // max(1, n_out))


def _param(var: Any, width: int) -> str:
    """A parameter array's type: its largest value's integer bits, `width - 2` significant bits on its smallest
    non-zero value (at least `width` bits in all), rounded to nearest."""
    import numpy as np

    data = getattr(var, "data_unquantized", None)
    a = np.abs(np.asarray(var.data if data is None else data, dtype=np.float64))
    nz = a[a > 0]
    if not nz.size:
        return "fixed<2,2>"
    i = int_bits(float(nz.max()), 1.0)
    f = max(width - i, (width - 2) - math.floor(math.log2(float(nz.min()))) - 1)
    return fixed(i + f, i, "RND")


def _window(layer: Any) -> int:
    return int(layer.get_attr("pool_height", 1) or 1) * int(layer.get_attr("pool_width", 1) or 1)
