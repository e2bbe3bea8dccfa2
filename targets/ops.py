"""Operation counts per weight layer: dense MACs, and what is left after skipping zero weights and zero inputs.

Counts are exact, not sampled: connections are counted by running each layer on 0/1 masks (a convolution
of a ones-image with ones-kernels counts the real connections, padding excluded; a convolution of the
non-zero-input mask with the non-zero-weight mask counts the effective operations). Terms follow NeuroBench
(Yik et al., 2025): dense MACs count every connection, effective MACs only those where weight and input
activation are both non-zero. For a ternary model each effective MAC is an add or subtract (an AC).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ternkit.core.errors import OptionError
from ternkit.core.model import Conv2d, Dense, TernaryModel

__all__ = ["LayerOps", "count_ops", "totals"]


@dataclass
class LayerOps:
    """One weight layer. Structural counts are per inference; measured ones are means over the samples."""

    index: int  # among weight layers
    layer: int  # position in model.layers
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_elements: int
    neurons: int  # output elements = neuron updates per inference
    weights: int
    nonzero_weights: int
    dense_macs: int  # real connections (padding excluded) = synapses of an expanded layer
    nonzero_weight_macs: int  # connections whose weight is non-zero (zero weights skipped, all inputs)
    measured: bool = False  # False: no data; the fields below assume every input is non-zero
    input_activation_sparsity: float = 0.0  # fraction of this layer's input elements that are zero
    effective_macs: float = 0.0  # weight and input both non-zero
    messages: float = 0.0  # non-zero input elements (events a neuromorphic core receives)
    active_neurons: float = 0.0  # outputs that receive at least one effective input
    output_zero_fraction: float = 0.0  # outputs that are zero after the following ReLU (if any)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["in_shape"], d["out_shape"] = list(self.in_shape), list(self.out_shape)
        return d


def _mask_layer(layer: Dense | Conv2d, weight_mask: np.ndarray) -> Dense | Conv2d:
    """The same connectivity with 0/1 weights, unit scale and no bias: forward() then counts connections."""
    w = weight_mask.astype(np.float32)
    one, zero = np.ones(1, np.float32), np.zeros(layer.weight.shape[0], np.float32)
    if isinstance(layer, Dense):
        return Dense(w, one, zero)
    return Conv2d(w, one, zero, stride=layer.stride, padding=layer.padding)


def count_ops(model: TernaryModel, x: np.ndarray | None = None, batch_size: int = 256) -> list[LayerOps]:
    """Per-weight-layer counts; with raw samples `x` (N, *input.shape) also the measured activity."""
    shapes = model.shapes()
    in_shapes = [tuple(model.input.shape)] + shapes[:-1]
    out: list[LayerOps] = []
    for li, layer in enumerate(model.layers):
        if not isinstance(layer, Dense | Conv2d):
            continue
        ones_in = np.ones((1, *in_shapes[li]), np.float32)
        dense = int(round(float(_mask_layer(layer, np.ones_like(layer.weight, bool)).forward(ones_in).sum())))
        nz = int(round(float(_mask_layer(layer, layer.weight != 0).forward(ones_in).sum())))
        n_out = int(np.prod(shapes[li]))
        out.append(LayerOps(len(out), li, layer.kind, in_shapes[li], shapes[li], int(np.prod(in_shapes[li])),
                            n_out, int(layer.weight.size), int(np.count_nonzero(layer.weight)), dense, nz,
                            effective_macs=float(nz), messages=float(np.prod(in_shapes[li])),
                            active_neurons=float(n_out)))
    if x is not None:
        _measure(model, np.asarray(x, np.float32), out, batch_size)
    return out


def _measure(model: TernaryModel, x: np.ndarray, ops: list[LayerOps], batch_size: int) -> None:
    if len(x) == 0:
        raise OptionError("no samples to measure activity on")
    if x.shape[1:] != tuple(model.input.shape):
        raise OptionError(f"samples have shape {x.shape[1:]}, the model expects {tuple(model.input.shape)}")
    by_layer = {o.layer: o for o in ops}
    sums = {o.layer: np.zeros(5) for o in ops}  # zero inputs, effective, messages, active, zero outputs
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        outs = model.activations(xb)
        inputs = [model.input.normalise(xb)] + outs[:-1]
        for li in by_layer:
            h = inputs[li]
            nonzero = (h != 0).astype(np.float32)
            counts = _mask_layer(model.layers[li], model.layers[li].weight != 0).forward(nonzero)
            # the output a following layer sees: after a ReLU if the next layer is one
            after = outs[li + 1] if li + 1 < len(model.layers) and model.layers[li + 1].kind == "relu" else outs[li]
            sums[li] += [float((h == 0).sum()), float(counts.sum()), float(nonzero.sum()),
                         float((counts > 0).sum()), float((after == 0).sum())]
    n = float(len(x))
    for li, o in by_layer.items():
        zin, eff, msg, act, zout = sums[li]
        o.measured = True
        o.input_activation_sparsity = zin / (n * o.in_elements)
        o.effective_macs, o.messages, o.active_neurons = eff / n, msg / n, act / n
        o.output_zero_fraction = zout / (n * o.neurons)


def totals(ops: list[LayerOps]) -> dict[str, float]:
    """Model totals, plus NeuroBench's connection and activation sparsity."""
    weights = sum(o.weights for o in ops)
    hidden_inputs = sum(o.in_elements for o in ops[1:])
    return {
        "dense_macs": sum(o.dense_macs for o in ops),
        "nonzero_weight_macs": sum(o.nonzero_weight_macs for o in ops),
        "effective_macs": float(sum(o.effective_macs for o in ops)),
        "neurons": sum(o.neurons for o in ops),
        "messages": float(sum(o.messages for o in ops)),
        "active_neurons": float(sum(o.active_neurons for o in ops)),
        "connection_sparsity": 1.0 - sum(o.nonzero_weights for o in ops) / weights,
        # NeuroBench: zeros among the outputs of activation layers, i.e. the inputs of all but the first layer
        "activation_sparsity": (sum(o.input_activation_sparsity * o.in_elements for o in ops[1:]) / hidden_inputs
                                if hidden_inputs else 0.0),
        "measured": all(o.measured for o in ops),
    }
