"""Build the torch network for a model spec, and turn a trained network into the artifact."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ternkit.core.errors import OptionError
from ternkit.core.model import Conv2d, Dense, Flatten, InputSpec, ReLU, TernaryModel

from .layers import QuantLayer
from .specs import ConvPlan, DensePlan, parse_model_spec

__all__ = ["Network", "build_network", "to_artifact"]


class Network(nn.Module):
    """A feed-forward stack of QuantLayer / ReLU / Flatten; the same sequence the artifact stores."""

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def weight_layers(self) -> list[QuantLayer]:
        return [m for m in self.layers if isinstance(m, QuantLayer)]


def build_network(spec: str, input_shape: tuple[int, ...], num_classes: int, parametrisation: str,
                  seed: int = 0, levels: int = 1, scale_mode: str = "channel") -> Network:
    plans = parse_model_spec(spec)
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(input_shape)
    layers: list[nn.Module] = []
    kw = dict(parametrisation=parametrisation, levels=levels, scale_mode=scale_mode, generator=gen)
    if any(isinstance(p, ConvPlan) for p in plans) and len(shape) != 3:
        raise OptionError(f"a cnn needs image input (C, H, W); this dataset has samples of shape {shape}")
    for plan in plans:
        if isinstance(plan, ConvPlan):
            c, h, w = shape
            oh, ow = (h + 2 * plan.padding - plan.kernel) // plan.stride + 1, (
                w + 2 * plan.padding - plan.kernel) // plan.stride + 1
            if oh < 1 or ow < 1:
                raise OptionError(f"convolution {plan} does not fit input {shape}")
            layers += [QuantLayer("conv", c, plan.channels, kernel=plan.kernel, stride=plan.stride,
                                  padding=plan.padding, **kw), nn.ReLU()]
            shape = (plan.channels, oh, ow)
        else:
            assert isinstance(plan, DensePlan)
            if len(shape) > 1:
                layers.append(nn.Flatten())
                shape = (int(np.prod(shape)),)
            layers += [QuantLayer("dense", shape[0], plan.units, **kw), nn.ReLU()]
            shape = (plan.units,)
    if len(shape) > 1:
        layers.append(nn.Flatten())
        shape = (int(np.prod(shape)),)
    layers.append(QuantLayer("dense", shape[0], num_classes, **kw))
    return Network(layers, tuple(input_shape))


def to_artifact(net: Network, input_spec: InputSpec, labels: list[str], levels: int = 1,
                provenance: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> TernaryModel:
    """The deployed model: integer weights and scales exactly as the network computes with them."""
    kinds = {m.parametrisation for m in net.weight_layers()}
    kind = "float" if kinds == {"float"} else "ternary"
    out: list[Any] = []
    for m in net.layers:
        if isinstance(m, QuantLayer):
            w, s = m.deployed()
            weight = w.numpy().astype(np.int8) if kind == "ternary" else w.numpy().astype(np.float32)
            scale, bias = s.numpy().astype(np.float32).reshape(-1), m.bias.detach().numpy().astype(np.float32)
            if m.kind == "dense":
                out.append(Dense(weight, scale, bias))
            else:
                out.append(Conv2d(weight, scale, bias, (m.stride, m.stride), (m.padding, m.padding)))
        elif isinstance(m, nn.ReLU):
            out.append(ReLU())
        elif isinstance(m, nn.Flatten):
            out.append(Flatten())
        else:
            raise TypeError(f"cannot export {type(m).__name__}")
    model = TernaryModel(out, input_spec, list(labels), kind=kind, levels=levels if kind == "ternary" else 1,
                         provenance=dict(provenance or {}), metrics=dict(metrics or {}))
    model.validate()
    return model
